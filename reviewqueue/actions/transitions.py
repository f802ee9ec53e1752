"""A change of an action's status: conditional on the status it leaves, audited
in the same transaction, told to the agent and its long-polls after commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from reviewqueue.actions import wakeups
from reviewqueue.audit.trail import audit_append
from reviewqueue.core.errors import (
    IllegalTransition,
)
from reviewqueue.models import (
    Action,
    Status,
    Tier,
)
from reviewqueue.notify import outbox as notifications

PENDING_ONLY = frozenset({Status.PENDING})


def transition(
    action: Action,
    *,
    allowed_from: frozenset[str],
    to: str,
    kind: str,
    actor: str,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
    **fields: Any,
) -> Action:
    """Move the action to `to` if it is still in one of `allowed_from`, or raise 409."""
    now = at or timezone.now()
    if to != Status.PENDING and action.tier == Tier.BLOCKING:
        fields.setdefault("next_deadline_at", None)  # decided: no more deadlines
        fields.setdefault("claimed_by", None)
        fields.setdefault("claim_expires_at", None)
    with transaction.atomic():
        # Conditional UPDATE: of two concurrent deciders, only one matches.
        won = Action.objects.filter(pk=action.pk, status__in=allowed_from).update(status=to, updated_at=now, **fields)
        if not won:
            current = Action.objects.filter(pk=action.pk).values_list("status", flat=True).first()
            raise IllegalTransition(
                f"The action is {current}; it can't become {to}.",
                details={"status": current, "requested": to},
            )
        action.refresh_from_db()
        audit_append(kind=kind, actor=actor, action=action, at=now, data={"status": to, **(data or {})})
        notifications.enqueue(event=kind, action=action, data=data, to_agent=True, at=now)
        transaction.on_commit(lambda: wakeups.notify(action.pk))
    return action


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
