"""SLA policies: which deadline and escalation chain an action gets.

The chain is resolved once, at submission, into absolute UTC times stored on
the action (`sla_chain`, `next_deadline_at`), so a later policy edit never
moves a deadline an agent was already told about.
"""

from __future__ import annotations

import fnmatch
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from reviewqueue.core.roles import Role
from reviewqueue.models import (
    ALERT_OPS,
    ESCALATE,
    EXPIRE,
    SlaPolicy,
    Tier,
)

DEFAULT_STEPS: dict[str, list[dict[str, Any]]] = {
    # Half the SLA: senior reviewers; the full SLA: expire, failing closed.
    Tier.BLOCKING: [{"at": 0.5, "do": ESCALATE, "group": Role.SENIOR_REVIEWER}, {"at": 1.0, "do": EXPIRE}],
    # Reviewed after the fact: overdue at the SLA, ops alerted at twice it.
    Tier.ASYNC_REVIEW: [{"at": 1.0, "do": ESCALATE, "group": Role.SENIOR_REVIEWER}, {"at": 2.0, "do": ALERT_OPS}],
}


_cache: dict[str, Any] = {"policies": None, "until": 0.0}
CACHE_SECONDS = 5.0


def policies_invalidate(**kwargs) -> None:
    """Called on every save or delete of an SlaPolicy (and by tests)."""
    _cache["policies"] = None


def _policies() -> list[SlaPolicy]:
    # Every submission needs the policies; each process re-reads them at most
    # every few seconds, and at once after a change it made itself.
    now = time.monotonic()
    if _cache["policies"] is None or now > _cache["until"]:
        _cache["policies"] = list(SlaPolicy.objects.order_by("-priority", "id"))
        _cache["until"] = now + CACHE_SECONDS
    return _cache["policies"]


def policy_for(*, tier: str, action_type: str) -> tuple[timedelta, list[dict]] | None:
    """The SLA and steps for a new action; None for the auto tier.

    An edit in the admin applies to new actions within CACHE_SECONDS.
    """
    if tier not in DEFAULT_STEPS:
        return None
    for policy in (p for p in _policies() if p.tier == tier):
        if fnmatch.fnmatchcase(action_type, policy.action_type_pattern):
            return policy.sla, policy.steps
    default = settings.REVIEWQUEUE["SLA_BLOCKING" if tier == Tier.BLOCKING else "SLA_ASYNC_REVIEW"]
    return default, DEFAULT_STEPS[tier]


def chain_resolve(*, start: datetime, sla: timedelta, steps: list[dict]) -> list[dict]:
    """Steps at fractions of the SLA → steps at absolute times (ISO, UTC)."""
    return [
        {
            "due_at": (start + sla * step["at"]).isoformat(),
            "do": step["do"],
            **({"group": step.get("group", Role.SENIOR_REVIEWER)} if step["do"] == ESCALATE else {}),
        }
        for step in steps
    ]


post_save.connect(policies_invalidate, sender=SlaPolicy)
post_delete.connect(policies_invalidate, sender=SlaPolicy)
