"""Formerly the gate on how many requests of a web process ran at once.

bench/submit_bench.py measured the gate (two running requests a worker, the
rest queued in arrival order) against stock gthread without it, alternating
in the same run: throughput and p99 were the same within the noise, or better
without it. So every thread runs its request as gunicorn hands it over, and
what a long-poll may hold is bounded in reviewqueue/actions/wakeups.py.

`yielded()` stays only because reviewqueue/notify/outbox.py still marks its
broker publish with it; it does nothing. Drop it with that call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def yielded() -> Iterator[None]:
    """Nothing: kept for the callers that have not dropped it yet."""
    yield
