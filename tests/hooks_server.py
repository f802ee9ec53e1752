"""A real local HTTP server that receives webhooks (and can be told to fail)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HookServer:
    """Listens on 127.0.0.1 (so webhooks to it need the allow-list, see netguard).

    `status` answers every path; `status_for` overrides it per path."""

    def __init__(self, *, tls=None):
        """`tls`: an ssl.SSLContext to serve HTTPS with."""
        self.received: list[dict] = []
        self.status = 200
        self.status_for: dict[str, int] = {}
        self.event = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.received.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "json": json.loads(body) if body else None,
                    }
                )
                self.send_response(server.status_for.get(self.path, server.status))
                self.end_headers()
                server.event.set()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
