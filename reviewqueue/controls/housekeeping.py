"""Expiry of short-lived bookkeeping (never of history: audit and actions stay)."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from reviewqueue.controls.ratelimit import rate_counters_purge, wait_slots_purge
from reviewqueue.models import IdempotencyKey


def purge_expired() -> dict[str, int]:
    ttl: timedelta = settings.REVIEWQUEUE["IDEMPOTENCY_TTL"]
    cutoff = timezone.now() - ttl
    keys, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return {"idempotency_keys": keys, "rate_counters": rate_counters_purge(), "wait_slots": wait_slots_purge()}
