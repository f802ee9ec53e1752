"""Keep a running server's queue alive with a realistic mix of agent actions.

Posts actions from the risk router's golden set (real tool calls from a dozen
domains: payments, email, shell, CRM, …) through the public HTTP API with the
demo agent's key, in short conversations, a few seconds apart. Stops cleanly on
SIGTERM/SIGINT. Never talks to the database: it is an agent like any other.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

GOLDEN = Path(settings.BASE_DIR) / "riskrouter" / "golden"


def golden_actions() -> list[dict]:
    actions = []
    for path in sorted(GOLDEN.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                body = dict(json.loads(line)["action"])
                body.pop("agent", None)
                actions.append(body)
    return actions


class Command(BaseCommand):
    help = "Post a realistic mix of actions to a running server through the API, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's base URL")
        parser.add_argument("--key-file", default=str(settings.VAR_DIR / "demo-agent.key"))
        parser.add_argument("--interval", type=float, default=4.0, help="mean seconds between actions")
        parser.add_argument(
            "--max-pending", type=int, default=60, help="pause while this many of our actions wait for a reviewer"
        )
        parser.add_argument("--count", type=int, default=0, help="stop after this many (0: run until stopped)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, url, key_file, interval, max_pending, count, seed, **options):
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise CommandError(f"No demo agent key at {key_file} (run manage.py bootstrap_demo): {exc}") from None
        self.base, self.key = url.rstrip("/"), key
        rng = random.Random(seed)  # noqa: S311 (picks demo actions, not secrets)
        pool = golden_actions()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self._wait_for_server(stop)
        pending: list[str] = []
        sent = 0
        conversation, left = "", 0
        while not stop.is_set() and (not count or sent < count):
            pending = [pk for pk in pending if self._still_pending(pk)] if len(pending) >= max_pending else pending
            if len(pending) >= max_pending:
                stop.wait(interval * 3)
                continue
            if left <= 0:  # a new conversation of 1-4 actions
                conversation, left = f"demo-{uuid.uuid4().hex[:8]}", rng.randint(1, 4)
            body = {
                **rng.choice(pool),
                "conversation_id": conversation,
                "cost": {
                    "input_tokens": rng.randint(400, 6000),
                    "output_tokens": rng.randint(40, 900),
                    "usd": round(rng.uniform(0.0005, 0.03), 4),
                },
            }
            left -= 1
            status, answer = self._post("/api/v1/actions", body)
            if status == 201:
                sent += 1
                if answer.get("status") == "pending":
                    pending.append(answer["id"])
                self.stdout.write(f"{answer.get('tier', '?'):>12}  {body['action_type']}: {body['summary'][:70]}")
            elif status == 429:
                stop.wait(5)
            elif status == 423:
                self.stdout.write("kill switch engaged; waiting")
                stop.wait(15)
            else:
                self.stderr.write(f"{status}: {str(answer)[:200]}")
            stop.wait(rng.expovariate(1 / interval))
        self.stdout.write(f"demo agent stopped after {sent} actions")

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (our own http(s) --url)
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own http(s) --url)
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except (urllib.error.URLError, OSError) as exc:
            return 0, {"error": str(exc)}

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        return self._request("POST", path, body)

    def _still_pending(self, pk: str) -> bool:
        status, answer = self._request("GET", f"/api/v1/actions/{pk}")
        return status == 200 and answer.get("status") == "pending"

    def _wait_for_server(self, stop: threading.Event) -> None:
        """The run command starts us beside gunicorn; wait (quietly, without end) until it answers,
        so a slow start never takes the demo down with it."""
        while not stop.is_set():
            status, _ = self._request("GET", "/api/v1/kill-switch")
            if status in (200, 401, 403):
                return
            stop.wait(0.5)
