"""gunicorn's gthread worker, taking new connections only on its turn.

Agents keep their connections alive, and a kept-alive connection stays with
the worker that accepted it. Plain gthread workers race for every new one,
so sixteen agents can end up thirteen on one worker and three on the other:
the first worker's requests then queue four times as long, and that worker is
the p99. Here each worker publishes its load (open connections, less the
long-polls parked in reviewqueue.core.admission, which break ties) in memory
shared with its siblings, and listens for new connections only while no
live sibling carries less. The least loaded worker always listens, so a
connection never waits for a turn that doesn't come.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import time
from collections.abc import Iterable

from gunicorn.workers.gthread import ThreadWorker

# Created when gunicorn's master imports this module, before it forks.
_SLOTS = 256
_pids = multiprocessing.RawArray(ctypes.c_int, _SLOTS)
_loads = multiprocessing.RawArray(ctypes.c_int, _SLOTS)
_beats = multiprocessing.RawArray(ctypes.c_double, _SLOTS)
_claiming = multiprocessing.Lock()
_in_use = multiprocessing.RawValue(ctypes.c_int, 0)  # slots ever claimed: the scan stops there
# A sibling silent this long (its loop wakes every second) is gone or stuck.
STALE_SECONDS = 5.0


def may_accept(mine: int, others: Iterable[int]) -> bool:
    """Our turn when no sibling carries less."""
    return all(mine <= theirs for theirs in others)


class BalancedThreadWorker(ThreadWorker):
    def init_process(self):
        self._slot = _claim_slot(os.getpid())
        super().init_process()

    def _load(self) -> int:
        """Connections whose requests run or queue first; among equals, the
        fewer parked long-polls (they hold threads) first."""
        from reviewqueue.core import admission

        parked = min(admission.parked(), self.nr_conns)
        return (self.nr_conns - parked) * 1024 + min(parked, 1023)

    def _publish(self) -> int:
        load = _loads[self._slot] = self._load()
        _beats[self._slot] = time.monotonic()
        return load

    def _our_turn(self) -> bool:
        mine, now = self._publish(), time.monotonic()
        return may_accept(mine, (
            _loads[i] for i in range(_in_use.value)
            if i != self._slot and _pids[i] and now - _beats[i] < STALE_SECONDS
        ))

    def set_accept_enabled(self, enabled):
        # The run loop asks for this on every pass while we don't listen.
        super().set_accept_enabled(enabled and self._our_turn())

    def wait_for_and_dispatch_events(self, timeout):
        self._publish()
        super().wait_for_and_dispatch_events(timeout)

    def accept(self, listener):
        if not self._our_turn():
            super().set_accept_enabled(False)  # a sibling takes it; the loop asks again
            return
        super().accept(listener)
        self._publish()

    def run(self):
        try:
            super().run()
        finally:
            _pids[self._slot] = 0


def _claim_slot(pid: int) -> int:
    with _claiming:
        now = time.monotonic()
        for slot in range(_SLOTS):
            if not _pids[slot] or now - _beats[slot] >= STALE_SECONDS:
                _pids[slot], _loads[slot], _beats[slot] = pid, 0, now
                _in_use.value = max(_in_use.value, slot + 1)
                return slot
    raise RuntimeError(f"more than {_SLOTS} gunicorn workers")
