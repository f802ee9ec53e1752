"""Group commit: concurrent writes of one process share one transaction.

Every submission locks the audit chain from its append until COMMIT, so
under load request threads queue on that lock one commit at a time, and a
lock holder descheduled by a busy CPU stalls them all. A `Batcher` has one
writer thread per process that takes whatever requests have queued, writes
them together (one kill-switch read, one chain lock, multi-row INSERTs, one
COMMIT) and hands each request its own result. Batches form by themselves:
while one is being written, the next one queues.

A failed batch is written again one item at a time, so a bad item (or a lost
Idempotency-Key race) fails alone, with its own exception, in its own request.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)
Item = TypeVar("Item")
MAX_BATCH = 100
IDLE_SECONDS = 1.0  # a writer with nothing to do hands its connection back after this


def enabled() -> bool:
    """Batch only on PostgreSQL and outside any enclosing transaction (whose
    writes a writer thread could neither see nor commit)."""
    return (
        settings.REVIEWQUEUE["GROUP_COMMIT"]
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
    )


class Batcher(Generic[Item]):
    """`write(items, commit=True)` writes a batch in one transaction of the
    calling thread's connection, sending COMMIT with its last statement."""

    def __init__(self, write: Callable[..., None], *, name: str) -> None:
        self._write = write
        self._name = name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked worker starts its own writer

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self._queue: list[tuple[Item, Future]] = []
        self._thread: threading.Thread | None = None

    def run(self, item: Item) -> Item:
        """Write `item` with whatever else is queued; block until committed."""
        done: Future = Future()
        with self._condition:
            self._queue.append((item, done))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._condition.notify()
        done.result()  # re-raises the item's own exception
        return item

    def _loop(self) -> None:
        while True:
            with self._condition:
                if not self._queue and not self._condition.wait_for(lambda: self._queue, IDLE_SECONDS):
                    connection.close()  # idle: give the connection back (to the pool, if any)
                    continue
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                self._write_batch(batch)
            finally:  # whatever happened, no request waits forever
                for _, done in batch:
                    if not done.done():
                        done.set_exception(RuntimeError("the group-commit writer stopped"))

    def _write_batch(self, batch: Sequence[tuple[Item, Future]]) -> None:
        try:
            self._attempt([item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            log.info("a batch of %d failed; writing its items one by one", len(batch), exc_info=True)
            for item, done in batch:
                try:
                    self._attempt([item])
                except Exception as error:  # handed to the request that sent the item
                    done.set_exception(error)
                else:
                    done.set_result(None)
            return
        for _, done in batch:
            done.set_result(None)

    def _attempt(self, items: list[Item]) -> None:
        if connection.connection is not None and connection.errors_occurred and not connection.is_usable():
            connection.close()  # a broken connection from the last attempt: start afresh
        connection.errors_occurred = False
        self._write(items, commit=True)
