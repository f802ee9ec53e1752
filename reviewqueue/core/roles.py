"""Who may do what: the one place that knows the roles and what each allows.

A role is a Django group of that name; a superuser holds every role. The
dashboard, the ops API, the admin's reveal, the SLA's escalation targets
and the lifecycle's checks all ask here, so one user gets the same answer
from the page and from the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    REVIEWER = "reviewer"
    SENIOR_REVIEWER = "senior_reviewer"
    OPS = "ops"
    ADMIN = "admin"


ROLES = tuple(Role)
REVIEW_ROLES = frozenset({Role.REVIEWER, Role.SENIOR_REVIEWER, Role.ADMIN})
OPS_ROLES = frozenset({Role.OPS, Role.ADMIN})
REVEAL_ROLES = frozenset({Role.SENIOR_REVIEWER, Role.ADMIN})


def user_roles(user: Any) -> frozenset[str]:
    """The user's role groups; superusers hold every role. Cached on the user object."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_reviewqueue_roles", None)
    if cached is None:
        if user.is_superuser:
            cached = frozenset(ROLES)
        else:
            cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._reviewqueue_roles = cached
    return cached


def may_review(user: Any) -> bool:
    return bool(user_roles(user) & REVIEW_ROLES)


def may_operate(user: Any) -> bool:
    """Ops and admins: the kill switches, dead letters and stats, on the page and in the API."""
    return bool(user_roles(user) & OPS_ROLES)


def may_reveal(user: Any) -> bool:
    """Who may reveal personal data: senior reviewers and admins, each reveal audited (masked otherwise)."""
    return bool(user_roles(user) & REVEAL_ROLES)


def sees_every_escalation(user: Any) -> bool:
    """Superusers work every escalated item, whoever it was sent to."""
    return bool(getattr(user, "is_superuser", False))


def escalation_refusal(*, user: Any, group: str) -> str | None:
    """Why this user may not hand an item to `group`, or None: handing it to a
    group they belong to would hand it to themselves."""
    if group in user_roles(user):
        return f"You are one of the {group.replace('_', ' ')}s yourself: decide it, or hand it to another group."
    return None


def escalation_targets(user: Any) -> list[str]:
    """Values of `escalated_to` addressed to this user: their groups and themselves."""
    return [*sorted(user_roles(user)), f"user:{user.get_username()}"]


def decide_refusal(*, user: Any, action: Any, owner_ids: Iterable[int] | None = None) -> str | None:
    """Why this user may not decide this action, or None if they may."""
    if not user_roles(user) & REVIEW_ROLES:
        return "Only reviewers may decide actions."
    if owner_ids is None:
        owner_ids = action.agent.owners.values_list("pk", flat=True)
    if user.pk in set(owner_ids):
        return (
            f"You own the agent {action.agent.name}; another reviewer must decide its actions (separation of duties)."
        )
    if action.escalated_to and not sees_every_escalation(user) and action.escalated_to not in escalation_targets(user):
        return f"This action was escalated to {action.escalated_to.replace('_', ' ')}s; one of them must decide."
    return None
