"""How many requests of one web process run at once.

gunicorn's gthread workers give every connection a thread, and under load
all of them fight over the GIL: whichever thread the OS wakes runs, so some
requests wait many turns and the slowest percent of answers takes several
times the median. The gate lets a few requests run (`WEB_ACTIVE_REQUESTS`,
enough to overlap one's database round trip with another's Python) and hands
each freed slot to the longest waiter, so requests finish in arrival order.

A long-poll gives its slot back while it sleeps (`yielded()`), so agents
waiting on decisions never hold up submissions. Without `configure()` (the
test client, runserver) the gate lets everything through.

bench/submit_bench.py --compare WEB_ACTIVE_REQUESTS=0 runs a server without
the gate in the same rounds: with 16 connections the throughput was about
the same and the p99 lower with it (100 ms against 156 ms, and 134 against
167 ms, medians of six alternating rounds on a busy 2-core machine; 4 slots
gave 140 ms).
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager


class Gate:
    """A FIFO semaphore: a released slot goes straight to the first waiter,
    so a newcomer can't overtake the queue (threading.Semaphore lets it)."""

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("a gate needs at least one slot")
        self._free = slots
        self._queue: deque[threading.Lock] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._queue:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._queue.append(turn)
        turn.acquire()  # released by the holder that hands us its slot

    def release(self) -> None:
        with self._lock:
            if self._queue:
                self._queue.popleft().release()
            else:
                self._free += 1

    @property
    def waiting(self) -> int:
        return len(self._queue)


_gate: Gate | None = None
_holding = threading.local()


def configure(slots: int) -> None:
    """Limit this process to `slots` running requests (0: no limit)."""
    global _gate
    _gate = Gate(slots) if slots else None


def gated(app):
    """Wrap a WSGI application in the process's gate. The response body is
    written after the slot is freed, so a slow reader holds no slot."""

    def application(environ, start_response):
        gate = _gate
        if gate is None:
            return app(environ, start_response)
        gate.acquire()
        _holding.gate = gate
        try:
            return app(environ, start_response)
        finally:
            _holding.gate = None
            gate.release()

    return application


@contextmanager
def yielded():
    """Give this request's slot to others while it blocks on something that
    needs no CPU (a long-poll); take a slot again, in turn, afterwards."""
    gate = getattr(_holding, "gate", None)
    if gate is not None:
        gate.release()
    try:
        yield
    finally:
        if gate is not None:
            gate.acquire()
