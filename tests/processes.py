"""Real Celery worker, beat and a private Redis broker, for the clock's tests.

The processes share the test database: its URL is rebuilt from the test
connection's settings and handed to them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    return f"postgresql://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Broker:
    """A private redis-server, so a test can kill and restart it."""

    def __init__(self, tmp: Path):
        self.port, self.tmp, self.process = free_port(), tmp, None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self):
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self):
        self.process.kill()
        self.process.wait()


class Celery:
    """`celery -A config worker|beat`, with its output kept for failures."""

    def __init__(self, role: str, env: dict[str, str], tmp: Path):
        self.role, self.env, self.tmp = role, env, tmp
        self.output: list[str] = []
        self.ready = threading.Event()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60):
        self.ready.clear()
        args = [sys.executable, "-m", "celery", "-A", "config", self.role, "--loglevel", "INFO"]
        if self.role == "worker":
            args += ["--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"w{os.getpid()}@%h"]
        else:
            args += ["--schedule", str(self.tmp / "beat-schedule"), "--max-interval", "1"]
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"{self.role} did not start:\n" + "".join(self.output[-40:]))

    def _read(self, process):
        marker = "ready." if self.role == "worker" else "beat: Starting"
        for line in process.stdout:
            self.output.append(line)
            if marker in line:
                self.ready.set()

    def kill(self, sig=signal.SIGKILL):
        """Kill the whole process group (the worker's pool children too)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self):
        self.kill(signal.SIGTERM)


def _wait_for_port(port: int, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Gunicorn:
    """The web server as the run command starts it (config/gunicorn.conf.py)."""

    def __init__(self, env: dict[str, str], *, workers: int = 1, timeout: float = 60):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output: list[str] = []
        self.ready = threading.Semaphore(0)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env={**env, "BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        for _ in range(workers):
            if not self.ready.acquire(timeout=max(deadline - time.monotonic(), 0)):
                self.stop()
                raise RuntimeError("gunicorn did not start:\n" + "".join(self.output[-40:]))

    def _read(self):
        for line in self.process.stderr:
            self.output.append(line)
            if "Worker ready" in line:
                self.ready.release()

    def connections_per_worker(self) -> dict[int, int]:
        """Established connections to the server, by the worker pid holding them (from /proc)."""
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) == self.port and fields[3] == "01":
                        inodes.add(fields[9])
        counts = {}
        for pid in _children(self.process.pid):
            fds = Path(f"/proc/{pid}/fd")
            held = 0
            for fd in fds.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                held += target.startswith("socket:[") and target[8:-1] in inodes
            counts[pid] = held
        return counts

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return children
