"""Refused submissions in the audit trail, aggregated.

Every refusal (out of scope, a kill switch) is evidence, but an agent stuck in
a loop or probing its limits can produce thousands, and the audit trail is
permanent. So the first refusal of each kind per agent and window is audited
in full at once; the rest of that window only count (one upsert, in
RefusalTally), and `refusals_fold` writes one `agent.refusals` event per
closed window with how many more there were and the latest one's details.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from reviewqueue.audit.trail import audit_append, audit_append_many
from reviewqueue.models import Agent, RefusalTally


def _window() -> timedelta:
    window: timedelta = settings.REVIEWQUEUE["REFUSAL_AUDIT_WINDOW"]
    return window


def _window_start(at: datetime) -> datetime:
    seconds = _window().total_seconds()
    return datetime.fromtimestamp(math.floor(at.timestamp() / seconds) * seconds, tz=UTC)


def refusal_record(*, kind: str, agent: Agent, data: dict[str, Any], at: datetime | None = None) -> None:
    """Audit a refused submission: in full if it is the window's first of its
    kind for this agent, otherwise as one more in the window's count."""
    now = at or timezone.now()
    start = _window_start(now)
    with transaction.atomic(), connection.cursor() as cursor:
        # One atomic upsert: of two concurrent refusals exactly one sees 0.
        # (The ORM has no upsert that increments and returns the count.)
        cursor.execute(
            "INSERT INTO reviewqueue_refusaltally (agent_id, kind, window_start, count, sample)"
            " VALUES (%s, %s, %s, 0, %s) ON CONFLICT (agent_id, kind, window_start)"
            " DO UPDATE SET count = reviewqueue_refusaltally.count + 1, sample = excluded.sample RETURNING count",
            [agent.pk, kind, connection.ops.adapt_datetimefield_value(start), orjson.dumps(data).decode()],
        )
        first = cursor.fetchone()[0] == 0
        if first:
            window_end = start + _window()
            audit_append(
                kind=kind,
                actor=f"agent:{agent.name}",
                agent=agent,
                at=now,
                data={**data, "more_counted_until": window_end.isoformat()},
            )


def refusals_fold(*, now: datetime | None = None) -> int:
    """Write one `agent.refusals` event per closed window that counted more
    refusals than its first, and drop the closed windows; returns how many
    events. Idempotent: a window is folded and deleted in one transaction."""
    current = _window_start(now or timezone.now())
    window = _window()
    with transaction.atomic():
        # SKIP LOCKED: two folds at once split the windows instead of doubling them.
        closed = list(
            RefusalTally.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("agent")
            .filter(window_start__lt=current)
            .order_by("window_start", "pk")
        )
        events = [
            {
                "kind": "agent.refusals",
                "actor": "reviewqueue",
                "agent": tally.agent,
                "data": {
                    "refusal": tally.kind,
                    "more": tally.count,
                    "window_start": tally.window_start.isoformat(),
                    "window_end": (tally.window_start + window).isoformat(),
                    "latest": tally.sample,
                },
            }
            for tally in closed
            if tally.count
        ]
        audit_append_many(events)
        RefusalTally.objects.filter(pk__in=[tally.pk for tally in closed]).delete()
    return len(events)
