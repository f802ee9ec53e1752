"""Wakes long-polls when their action leaves `pending`.

A waiting request holds a threading.Event, not a database connection. One
watcher thread per process asks the database, every few tens of ms and only
while someone waits, which of the watched actions have moved on; changes made
in this process wake their waiters at commit, without waiting for the watcher.

A waiting request does hold its web thread, so a process parks at most
`max_waiting` of them (config/gunicorn.conf.py: all threads but a reserve);
past that a long-poll is refused at once (429 too_many_waits) instead of
leaving new requests queued behind the waits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

from django.conf import settings
from django.db import close_old_connections, connection

from reviewqueue.core import admission
from reviewqueue.core.errors import TooManyWaits

_lock = threading.Lock()
_waiters: dict[uuid.UUID, set[threading.Event]] = defaultdict(set)
_waiting = 0  # events in _waiters
_max_waiting: int | None = None  # no limit: the test client, runserver
_keys: dict[threading.Event, str] = {}  # a waiter's agent key hash
_watcher: threading.Thread | None = None
_watcher_wakeup = threading.Event()


def configure(*, max_waiting: int | None) -> None:
    """Park at most `max_waiting` long-polls in this process at once (None: no limit)."""
    global _max_waiting
    _max_waiting = max_waiting


def notify(action_id: uuid.UUID) -> None:
    """Wake this process's waiters on the action (call after commit)."""
    with _lock:
        events = list(_waiters.get(action_id, ()))
    for event in events:
        event.set()


def wait(action_id: uuid.UUID, *, timeout: float, key_hash: str = "") -> bool:
    """Block up to `timeout` s until the action may have left pending, or the
    key `key_hash` may have died; True if woken.

    The caller must have released its database connection first. Raises
    TooManyWaits when the process already parks `max_waiting` long-polls.
    """
    global _waiting
    event = threading.Event()
    with _lock:
        if _max_waiting is not None and _waiting >= _max_waiting:
            raise TooManyWaits(
                "This server is holding all the long-polls it can; wait again shortly, or follow the action "
                "with a webhook.",
                retry_after=1,
                details={"limit": _max_waiting, "per": "server process"},
            )
        _waiting += 1
        _waiters[action_id].add(event)
        if key_hash:
            _keys[event] = key_hash
        _ensure_watcher()
    _watcher_wakeup.set()
    try:
        with admission.yielded():  # its slot goes to a request that runs meanwhile
            return event.wait(timeout)
    finally:
        with _lock:
            _waiting -= 1
            _waiters[action_id].discard(event)
            _keys.pop(event, None)
            if not _waiters[action_id]:
                del _waiters[action_id]


def _ensure_watcher() -> None:
    global _watcher
    if _watcher is None or not _watcher.is_alive():
        _watcher = threading.Thread(target=_watch, name="reviewqueue-wakeups", daemon=True)
        _watcher.start()


def _wake_dead_keys() -> None:
    """Wake the waiters whose key was revoked or expired, or whose agent was deactivated."""
    from reviewqueue.credentials.keys import live_key_hashes

    with _lock:
        waiting = dict(_keys)
    if not waiting:
        return
    live = live_key_hashes(set(waiting.values()))
    for event, key_hash in waiting.items():
        if key_hash not in live:
            event.set()


def _watch() -> None:
    from reviewqueue.models import Action, Status

    interval = settings.REVIEWQUEUE["WAIT_POLL_SECONDS"]
    keys_checked = time.monotonic()
    while True:
        with _lock:
            watched = list(_waiters)
        if not watched:
            _watcher_wakeup.wait(1.0)
            _watcher_wakeup.clear()
            continue
        try:
            moved = list(
                Action.objects.filter(pk__in=watched).exclude(status=Status.PENDING).values_list("pk", flat=True)
            )
        except Exception:  # the database is briefly away: the waiters time out, we retry
            moved = []
            close_old_connections()
        for action_id in moved:
            notify(action_id)
        if time.monotonic() - keys_checked >= settings.REVIEWQUEUE["WAIT_KEY_CHECK_SECONDS"]:
            keys_checked = time.monotonic()
            try:
                _wake_dead_keys()
            except Exception:  # as above: retried on the next pass
                close_old_connections()
        # Give the connection back between polls (to the pool, when there is one).
        connection.close()
        _watcher_wakeup.wait(interval)
        _watcher_wakeup.clear()
