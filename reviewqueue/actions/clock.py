"""The SLA clock: escalations, expiries and ops alerts as their deadlines come due."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from reviewqueue.actions.transitions import PENDING_ONLY, transition
from reviewqueue.audit.trail import audit_append_many
from reviewqueue.controls import sla
from reviewqueue.models import (
    Action,
    Status,
)
from reviewqueue.notify import outbox as notifications


def sla_sweep(*, limit: int = 500) -> int:
    """Apply every escalation step that is due, oldest deadline first; returns how many.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so sweeps running at once
    (two workers, or a catch-up after downtime) split the work instead of
    doing it twice. A claimed row stays locked until its step commits, and
    the step reads the level it advances from under that lock.
    """
    now = timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                Action.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("agent")
                .filter(next_deadline_at__lte=now)
                .order_by("next_deadline_at")[:limit]
            )
            _sla_steps(due, now=now)
        total += len(due)
        if not due:  # a step may have made a later one due too: loop until none is
            return total


def _sla_steps(due: list[Action], *, now: datetime) -> None:
    """One step for each claimed action: expiries one by one, escalations and
    alerts in bulk (one UPDATE, one audit append, one outbox write)."""
    moved, events = [], []
    for action in due:
        level = action.escalation_level
        if not action.is_open or level >= len(action.sla_chain):
            action.next_deadline_at = None
            moved.append(action)
            continue
        step = action.sla_chain[level]
        deadline = datetime.fromisoformat(step["due_at"])
        if action.sla_due_at is None:  # submit writes an SLA chain only together with its due time
            raise ValueError(f"action {action.pk} has an SLA chain but no sla_due_at")
        data = {"deadline": step["due_at"], "level": level + 1, "sla_due_at": action.sla_due_at.isoformat()}
        if step["do"] == sla.EXPIRE:
            transition(
                action,
                allowed_from=PENDING_ONLY,
                to=Status.EXPIRED,
                kind="action.expired",
                actor="sla",
                data=data,
                decided_at=deadline,
                decision_by_label="sla",
                escalation_level=level + 1,
                decision_note=f"No decision before the SLA ran out at {step['due_at']}; expired (fail closed).",
            )
            continue
        following = action.sla_chain[level + 1]["due_at"] if level + 1 < len(action.sla_chain) else None
        action.escalation_level, action.updated_at = level + 1, now
        action.next_deadline_at = datetime.fromisoformat(following) if following else None
        if step["do"] == sla.ESCALATE:
            action.escalated_at, action.escalated_to = deadline, step["group"]
            data["group"] = step["group"]
            events.append(("action.escalated", action, data))
        else:
            events.append(("action.overdue_ops_alert", action, data))
        moved.append(action)
    Action.objects.bulk_update(
        moved, ["escalation_level", "updated_at", "next_deadline_at", "escalated_at", "escalated_to"], batch_size=500
    )
    audit_append_many([{"kind": kind, "actor": "sla", "action": action, "data": data} for kind, action, data in events])
    notifications.enqueue_many(events, at=now)
