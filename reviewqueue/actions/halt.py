"""Halting and flagging the actions a kill switch covers, in bulk (see kill_switches)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from reviewqueue.actions import wakeups
from reviewqueue.actions.transitions import chunks
from reviewqueue.audit.trail import audit_append_many
from reviewqueue.controls import killswitch
from reviewqueue.models import (
    Action,
    ReviewState,
    Status,
)
from reviewqueue.notify import outbox as notifications


def actions_halt(*, scope: str, reason: str, actor: str) -> int:
    """Halt every pending action the kill switch scope covers; returns how many.

    In bulk (one UPDATE per chunk, events appended together): engaging the
    switch over thousands of pending actions must take seconds, not minutes.
    Call inside the engaging transaction.
    """
    now = timezone.now()
    ids = killswitch.covered_ids(Action.objects.filter(status=Status.PENDING), scope)
    halted: list[Action] = []
    for chunk in chunks(ids, 1000):
        # Conditional on still pending: a decision that won first stands.
        Action.objects.filter(pk__in=chunk, status=Status.PENDING).update(
            status=Status.HALTED,
            updated_at=now,
            decided_at=now,
            decision_by_label="kill_switch",
            decision_note=reason,
            next_deadline_at=None,
            claimed_by=None,
            claim_expires_at=None,
        )
        halted += Action.objects.filter(pk__in=chunk, status=Status.HALTED, updated_at=now).select_related("agent")
    data = {"status": Status.HALTED, "scope": scope, "reason": reason}
    audit_append_many([{"kind": "action.halted", "actor": actor, "action": a, "data": data, "at": now} for a in halted])
    notifications.enqueue_many([("action.halted", a, data) for a in halted], to_agent=True, at=now)
    halted_ids = [a.pk for a in halted]

    def wake() -> None:
        for pk in halted_ids:
            wakeups.notify(pk)

    transaction.on_commit(wake)
    return len(halted)


def actions_flag_for_review(*, scope: str, reason: str, actor: str) -> int:
    """Async-tier actions in scope that already went ahead get flagged for a reviewer."""
    now = timezone.now()
    flagged: list[Action] = []
    note = f"Flagged by the kill switch ({scope}): {reason}"
    for chunk in chunks(killswitch.covered_ids(Action.objects.open_async(), scope), 1000):
        Action.objects.filter(pk__in=chunk, review_state=ReviewState.AWAITING_REVIEW).update(
            review_state=ReviewState.FLAGGED,
            review_note=note,
            reviewed_at=now,
            updated_at=now,
        )
        flagged += Action.objects.filter(pk__in=chunk, review_state=ReviewState.FLAGGED, reviewed_at=now)
    data = {"review_state": ReviewState.FLAGGED, "scope": scope, "reason": reason}
    audit_append_many(
        [{"kind": "action.flagged", "actor": actor, "action": a, "data": data, "at": now} for a in flagged]
    )
    notifications.enqueue_many([("action.flagged", a, data) for a in flagged], to_agent=True, at=now)
    return len(flagged)
