"""What an agent does after submitting: withdraw a pending action, report the outcome."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from reviewqueue.actions.transitions import PENDING_ONLY, transition
from reviewqueue.audit.trail import audit_append
from reviewqueue.core.errors import (
    IllegalTransition,
    InvalidInput,
)
from reviewqueue.models import (
    Action,
    Outcome,
    Status,
)


def action_cancel(*, action: Action) -> Action:
    """The agent withdraws an action nobody has decided yet."""
    now = timezone.now()
    return transition(
        action,
        allowed_from=PENDING_ONLY,
        to=Status.CANCELLED,
        kind="action.cancelled",
        actor=f"agent:{action.agent.name}",
        at=now,
        decided_at=now,
        decision_by_label="agent",
    )


def action_record_outcome(
    *,
    action: Action,
    outcome: str,
    detail: str,
    duration_ms: int | None = None,
    error_kind: str = "",
    attempt: int | None = None,
) -> Action:
    """The agent reports what happened when it executed; once, and only if it was allowed to.
    The duration, error kind and attempt are what its client measured (optional)."""
    if outcome not in Outcome.values:
        raise InvalidInput(f"outcome must be one of {', '.join(Outcome.values)}")
    now = timezone.now()
    written = {
        "outcome": outcome,
        "outcome_detail": detail,
        "outcome_at": now,
        "outcome_duration_ms": duration_ms,
        "outcome_error_kind": error_kind,
        "outcome_attempt": attempt,
        "updated_at": now,
    }
    with transaction.atomic():
        won = Action.objects.filter(pk=action.pk, status=Status.APPROVED, outcome="").update(**written)
        if not won:
            action.refresh_from_db()
            if action.outcome:
                raise IllegalTransition(
                    f"An outcome was already reported ({action.outcome}).", details={"outcome": action.outcome}
                )
            raise IllegalTransition(
                f"The action is {action.status}; only approved actions may report an outcome.",
                details={"status": action.status},
            )
        # The row as the caller read it, with what this call wrote (not read again:
        # the outcome is the agent's last word on the action, and cheap to report).
        for field, value in written.items():
            setattr(action, field, value)
        audit_append(
            kind="action.outcome",
            actor=f"agent:{action.agent.name}",
            action=action,
            at=now,
            data={
                "outcome": outcome,
                "detail": detail,
                "duration_ms": duration_ms,
                "error_kind": error_kind,
                "attempt": attempt,
            },
        )
    return action
