"""Fixed-window rate limits shared by every web process.

With Redis configured the counters live in the cache (INCR is atomic there);
otherwise in the database, incremented by one atomic upsert. A lost update
would let a runaway agent past its limit, so neither path reads then writes.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from .errors import RateLimited
from .models import RateCounter

WINDOW_SECONDS = 60


def _hit(key: str, *, window_end) -> int:
    if settings.REVIEWQUEUE["RATE_LIMIT_BACKEND"] == "cache":
        ttl = WINDOW_SECONDS + 5
        cache.add(key, 0, timeout=ttl)  # SET NX: creates the window once
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 0, timeout=ttl)
            return cache.incr(key)
    table = RateCounter._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, count, expires_at) VALUES (%s, 1, %s) "
            f"ON CONFLICT (key) DO UPDATE SET count = {table}.count + 1 RETURNING count",
            [key, window_end],
        )
        return cursor.fetchone()[0]


def rate_limit_hit(*, limits: list[tuple[str, str, int]]) -> None:
    """Count one request against each (name, subject, limit); raise when one is over.

    Every limit is counted, so a refused request still uses up its window: an
    agent hammering past its limit stays limited until the window ends.
    """
    now = timezone.now()
    window = math.floor(now.timestamp() / WINDOW_SECONDS)
    window_end = datetime.fromtimestamp((window + 1) * WINDOW_SECONDS, tz=UTC)
    for name, subject, limit in limits:
        # Conversation ids are the agent's text: hash them into a safe, short key.
        digest = hashlib.blake2b(subject.encode(), digest_size=16).hexdigest()
        count = _hit(f"rl:{name}:{digest}:{window}", window_end=window_end)
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
