"""Fixed-window rate limits shared by every web process.

With Redis configured the counters live there (INCR is atomic; a request's
counters go in one round trip); otherwise in the database, incremented by one
atomic upsert. A lost update would let a runaway agent past its limit, so
neither path reads then writes.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import NoScriptError

from reviewqueue.core.errors import RateLimited, TooManyWaits
from reviewqueue.models import Agent, RateCounter, WaitSlot

WINDOW_SECONDS = 60


# Every counter in one round trip and one reply: Redis runs a script
# atomically, and a window's expiry is set once, by its first hit.
_HIT_ALL = """
local counts = {}
for i, key in ipairs(KEYS) do
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return counts
"""
_HIT_ALL_SHA = hashlib.sha1(_HIT_ALL.encode(), usedforsecurity=False).hexdigest()  # EVALSHA's name for it
_idle: dict[tuple[int, str], queue.SimpleQueue[redis.Redis]] = {}


def _idle_clients() -> queue.SimpleQueue[redis.Redis]:
    """This process's idle clients of the configured Redis (a child forked
    from a preloading master starts with none of the master's)."""
    url = str(settings.REDIS_URL)  # only called when it is set
    found = _idle.get((os.getpid(), url))
    if found is None:
        found = _idle.setdefault((os.getpid(), url), queue.SimpleQueue())
    return found


def _open_client() -> redis.Redis:
    """A client with one connection of its own (kept with it: dropping the
    client would close the connection)."""
    return redis.Redis.from_url(
        str(settings.REDIS_URL),
        single_connection_client=True,
        socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS,
    )


def _run_script(script: str, sha: str, keys: list[str], *args: object):
    """Run a Lua script in one round trip, on a connection borrowed for the call.

    redis-py's client machinery (pool checkout, retry wrappers, reply
    callbacks) cost more CPU per call than the call's own round trip, so the
    one command goes straight to the raw connection. Connections are lent from
    a free list rather than kept per thread: a process opens as many as it
    runs calls at once (a few), not one per thread (256 a worker, most of them
    parked in long-polls), and each one held about 95 KB."""
    idle = _idle_clients()
    try:
        client = idle.get_nowait()
    except queue.Empty:
        client = _open_client()
    conn = client.connection
    if conn is None:  # single_connection_client made one when it was opened
        raise RuntimeError("redis client without its connection")
    try:
        try:
            return _evalsha(conn, script, sha, keys, args)
        except redis.ConnectionError:
            conn.disconnect()  # dropped (Redis restarted, say): connect again, once
            return _evalsha(conn, script, sha, keys, args)
    except BaseException:
        conn.disconnect()  # a reply may be left unread: the next borrower reconnects
        raise
    finally:
        idle.put(client)


def _evalsha(conn: redis.Connection, script: str, sha: str, keys: list[str], args: tuple):
    try:
        conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
        return conn.read_response()
    except NoScriptError:  # not loaded yet: a restart of Redis flushes scripts
        conn.send_command("EVAL", script, len(keys), *keys, *args)
        return conn.read_response()


def _in_redis() -> bool:
    return settings.REVIEWQUEUE["RATE_LIMIT_BACKEND"] == "cache" and bool(settings.REDIS_URL)


def _hit_all(keys: list[str], *, window_end: datetime) -> list[int]:
    """Count one hit on each key; return the new counts."""
    ttl = WINDOW_SECONDS + 5
    if _in_redis():
        return _run_script(_HIT_ALL, _HIT_ALL_SHA, keys, ttl)
    if settings.REVIEWQUEUE["RATE_LIMIT_BACKEND"] == "cache":
        return [_cache_hit(key, ttl) for key in keys]
    table = RateCounter._meta.db_table
    counts = []
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute(
                f"INSERT INTO {table} (key, count, expires_at) VALUES (%s, 1, %s) "  # noqa: S608 (the table name is ours)
                f"ON CONFLICT (key) DO UPDATE SET count = {table}.count + 1 RETURNING count",
                [key, window_end],
            )
            counts.append(cursor.fetchone()[0])
    return counts


def _cache_hit(key: str, ttl: int) -> int:
    django_cache.add(key, 0, timeout=ttl)  # SET NX: creates the window once
    try:
        return django_cache.incr(key)
    except ValueError:  # expired between add and incr
        django_cache.add(key, 0, timeout=ttl)
        return django_cache.incr(key)


def rate_limit_hit(*, limits: list[tuple[str, str, int]]) -> None:
    """Count one request against each (name, subject, limit); raise when one is over.

    Every limit is counted, so a refused request still uses up its window: an
    agent hammering past its limit stays limited until the window ends.
    """
    now = timezone.now()
    window = math.floor(now.timestamp() / WINDOW_SECONDS)
    window_end = datetime.fromtimestamp((window + 1) * WINDOW_SECONDS, tz=UTC)
    # Conversation ids are the agent's text: hash them into a safe, short key.
    keys = [
        f"rl:{name}:{hashlib.blake2b(subject.encode(), digest_size=16).hexdigest()}:{window}"
        for name, subject, _ in limits
    ]
    for (name, _, limit), count in zip(limits, _hit_all(keys, window_end=window_end), strict=True):
        if count > limit:
            retry_after = max(1, math.ceil((window_end - now).total_seconds()))
            raise RateLimited(
                f"Rate limit of {limit} requests a minute per {name} exceeded; retry in {retry_after} s.",
                retry_after=retry_after,
                details={"limit": limit, "per": name, "window_seconds": WINDOW_SECONDS},
            )


def rate_counters_purge() -> int:
    deleted, _ = RateCounter.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted


# ------------------------------------------------------ concurrent waits ---
# Each long-poll holds a web thread, so one agent must not hold them all: an
# agent gets at most WAIT_MAX_PER_AGENT at once, counted across processes
# (in Redis when configured, else in the database). A slot carries an expiry,
# so one whose process died mid-wait stops counting by itself.

_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
_TAKE_SLOT_SHA = hashlib.sha1(_TAKE_SLOT.encode(), usedforsecurity=False).hexdigest()  # EVALSHA's name for it
_SLOT_GRACE_SECONDS = 10


@contextmanager
def wait_slot(*, agent: Agent, timeout: float) -> Iterator[None]:
    """Hold one of the agent's long-poll slots for up to `timeout` seconds,
    or raise TooManyWaits (429) when it holds all of them."""
    cap = settings.REVIEWQUEUE["WAIT_MAX_PER_AGENT"]
    now = timezone.now()
    expires = now + timedelta(seconds=timeout + _SLOT_GRACE_SECONDS)
    member = uuid.uuid4().hex
    key = f"waits:{agent.pk}"
    if _in_redis():
        taken = _run_script(
            _TAKE_SLOT,
            _TAKE_SLOT_SHA,
            [key],
            now.timestamp(),
            expires.timestamp(),
            member,
            cap,
            int(timeout) + 2 * _SLOT_GRACE_SECONDS,
        )
    else:
        with transaction.atomic():
            # The agent's row lock serialises its slot takers, so two can't
            # both see the last free slot. NO KEY UPDATE: submissions' foreign
            # key checks don't wait for it.
            Agent.objects.select_for_update(no_key=True).filter(pk=agent.pk).exists()
            taken = WaitSlot.objects.filter(agent=agent, expires_at__gt=now).count() < cap
            if taken:
                WaitSlot.objects.create(id=member, agent=agent, expires_at=expires)
    if not taken:
        raise TooManyWaits(
            f"Agent '{agent.name}' already has {cap} long-polls waiting; wait for one to return, or follow "
            "the action with a webhook.",
            retry_after=1,
            details={"limit": cap, "per": "agent"},
        )
    try:
        yield
    finally:
        if _in_redis():
            _run_script(_GIVE_SLOT, _GIVE_SLOT_SHA, [key], member)
        else:
            WaitSlot.objects.filter(pk=member).delete()


_GIVE_SLOT = "return redis.call('ZREM', KEYS[1], ARGV[1])"
_GIVE_SLOT_SHA = hashlib.sha1(_GIVE_SLOT.encode(), usedforsecurity=False).hexdigest()  # EVALSHA's name for it


def wait_slots_purge() -> int:
    deleted, _ = WaitSlot.objects.filter(expires_at__lt=timezone.now()).delete()
    return deleted
