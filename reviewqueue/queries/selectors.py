"""Reads with their permission checks built in, so no caller forgets one."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db.models import Q
from django.utils import timezone

from reviewqueue.core import roles
from reviewqueue.core.errors import Forbidden, NotFound
from reviewqueue.models import (
    Action,
    Agent,
    Decision,
    DecisionKind,
    KillSwitch,
    ReviewState,
    Status,
    Tier,
)


def action_get_for_agent(*, agent: Agent, action_id: uuid.UUID) -> Action:
    """The agent's own action; another agent's is 404, never 403 (no existence leak)."""
    action = Action.objects.select_related("agent").filter(pk=action_id, agent=agent).first()
    if action is None:
        raise NotFound("No such action.")
    return action


# ------------------------------------------------------ reviewer dashboard ---

COUNT_CAP = 1000  # nav counts stop counting here ("1000+"): bounded cost at any queue depth


def require_reviewer(user) -> None:
    if not roles.may_review(user):
        raise Forbidden("Only reviewers may see the review queue.")


def require_ops(user) -> None:
    if not roles.may_operate(user):
        raise Forbidden("Only ops may operate the kill switch.")


def _escalated_to(user):
    """The Escalated tab: open items escalated to this user or their groups (every one, for a superuser)."""
    if roles.sees_every_escalation(user):
        return Action.objects.escalated()
    return Action.objects.open().filter(escalated_to__in=roles.escalation_targets(user))


def _visible(user) -> Q:
    """Open items this user may work: not escalated, or escalated to them.

    An escalation assigns the item to a group (SLA chain or a reviewer's
    manual escalation), so the others stop seeing it as theirs to decide.
    """
    if roles.sees_every_escalation(user):
        return Q()
    return Q(escalated_to="") | Q(escalated_to__in=roles.escalation_targets(user))


class Tab(StrEnum):
    BLOCKING = "blocking"
    ASYNC = "async"
    ESCALATED = "escalated"
    DECIDED = "decided"


TAB_LABELS = {Tab.BLOCKING: "Blocking", Tab.ASYNC: "Async review", Tab.ESCALATED: "Escalated", Tab.DECIDED: "Decided"}


@dataclass(frozen=True)
class QueueFilters:
    agent: str = ""
    action_type: str = ""
    risk_min: float | None = None
    risk_max: float | None = None
    text: str = ""

    @classmethod
    def parse(cls, params) -> tuple[QueueFilters, dict[str, str]]:
        """Filters from a query dict, and an error per field it had to ignore."""
        errors: dict[str, str] = {}

        def score(name: str) -> float | None:
            raw = (params.get(name) or "").strip()
            if not raw:
                return None
            try:
                value = float(raw)
            except ValueError:
                errors[name] = "Enter a number between 0 and 1."
                return None
            if not 0 <= value <= 1:
                errors[name] = "Enter a number between 0 and 1."
                return None
            return value

        return cls(
            agent=(params.get("agent") or "").strip()[:100],
            action_type=(params.get("action_type") or "").strip()[:128],
            risk_min=score("risk_min"),
            risk_max=score("risk_max"),
            text=(params.get("q") or "").strip()[:200],
        ), errors

    def apply(self, queryset, prefix: str = ""):
        if self.agent:
            queryset = queryset.filter(**{f"{prefix}agent__name": self.agent})
        if self.action_type:
            queryset = queryset.filter(**{f"{prefix}action_type__startswith": self.action_type})
        if self.risk_min is not None:
            queryset = queryset.filter(**{f"{prefix}risk_score__gte": self.risk_min})
        if self.risk_max is not None:
            queryset = queryset.filter(**{f"{prefix}risk_score__lte": self.risk_max})
        if self.text:
            queryset = queryset.filter(**{f"{prefix}summary__icontains": self.text})
        return queryset

    def query(self) -> dict[str, str]:
        pairs = {
            "agent": self.agent,
            "action_type": self.action_type,
            "q": self.text,
            "risk_min": "" if self.risk_min is None else f"{self.risk_min:g}",
            "risk_max": "" if self.risk_max is None else f"{self.risk_max:g}",
        }
        return {k: v for k, v in pairs.items() if v}


@dataclass
class QueueRow:
    action: Action
    decision: Decision | None = None  # the Decided tab lists decisions


@dataclass
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None


def _cursor_encode(*parts: Any) -> str:
    raw = "|".join(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str | None) -> list[str] | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return None


def _after(queryset, cursor: str | None, field: str):
    """Keyset: rows strictly after (field, id) of the cursor, in ascending order."""
    parts = _cursor_decode(cursor)
    if parts and len(parts) == 2:
        try:
            at, pk = datetime.fromisoformat(parts[0]), uuid.UUID(parts[1])
        except ValueError:
            return queryset
        queryset = queryset.filter(Q(**{f"{field}__gt": at}) | Q(**{field: at, "pk__gt": pk}))
    return queryset


def queue_page(*, user, tab: Tab, filters: QueueFilters, cursor: str | None = None, limit: int = 50) -> QueuePage:
    """One page of a tab, most urgent first, from a keyset cursor (fast at any depth).

    Blocking: pending, earliest SLA deadline first. Async review: approved and
    awaiting review, oldest first (their SLA is a fixed span from creation).
    Escalated: open items escalated to the user or their groups. Decided:
    reviewers' decisions, newest first.
    """
    require_reviewer(user)
    if tab == Tab.DECIDED:
        return _readable_matches(_decided_page(filters, cursor, limit), filters=filters)
    if tab == Tab.BLOCKING:
        queryset, field = Action.objects.open_blocking().filter(_visible(user)), "sla_due_at"
    elif tab == Tab.ASYNC:
        queryset, field = Action.objects.open_async().filter(_visible(user)), "created_at"
    else:
        queryset = _escalated_to(user)
        field = "sla_due_at"
    queryset = _after(filters.apply(queryset), cursor, field)
    rows = list(queryset.select_related("agent", "claimed_by").only(*_ROW_FIELDS).order_by(field, "pk")[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = _cursor_encode(getattr(rows[-1], field), rows[-1].pk)
    return _readable_matches(QueuePage([QueueRow(a) for a in rows], next_cursor), filters=filters)


def _readable_matches(page: QueuePage, *, filters: QueueFilters) -> QueuePage:
    """The text filter matches only what every user reads: the masked summary
    (seniors too, who see it in the clear only after an audited reveal), so a
    search can't probe masked personal data."""
    if not filters.text:
        return page
    from reviewqueue.privacy.masking import text_mask

    needle = filters.text.casefold()
    return QueuePage([r for r in page.rows if needle in text_mask(r.action.summary).casefold()], page.next_cursor)


_ROW_FIELDS = (
    "id",
    "summary",
    "action_type",
    "risk_score",
    "risk_reasons",
    "sla_due_at",
    "created_at",
    "four_eyes",
    "escalated_to",
    "claim_expires_at",
    "status",
    "tier",
    "review_state",
    "agent",
    "agent__name",
    "claimed_by",
    "claimed_by__username",
)
FINAL_KINDS = (
    DecisionKind.APPROVE,
    DecisionKind.EDIT_APPROVE,
    DecisionKind.REJECT,
    DecisionKind.CONFIRM,
    DecisionKind.FLAG,
)


def _decided_page(filters: QueueFilters, cursor: str | None, limit: int) -> QueuePage:
    queryset = Decision.objects.filter(kind__in=FINAL_KINDS)
    parts = _cursor_decode(cursor)
    if parts and len(parts) == 1 and parts[0].isdigit():
        queryset = queryset.filter(pk__lt=int(parts[0]))
    queryset = filters.apply(queryset, prefix="action__")
    decisions = list(
        queryset.select_related("action__agent", "user")
        .only(
            "id",
            "kind",
            "created_at",
            "action",
            "user",
            "user__username",
            *(f"action__{f}" for f in _ROW_FIELDS if f != "claimed_by__username"),
        )
        .order_by("-pk")[: limit + 1]
    )
    next_cursor = None
    if len(decisions) > limit:
        decisions = decisions[:limit]
        next_cursor = _cursor_encode(decisions[-1].pk)
    return QueuePage([QueueRow(d.action, d) for d in decisions], next_cursor)


def queue_counts(*, user) -> dict[Tab, int]:
    """Items per tab for the navigation, capped at COUNT_CAP (shown as 1000+).

    Decided counts this user's own decisions in the last 24 hours.
    """
    if not roles.may_review(user):
        return {}

    def capped(queryset) -> int:
        return queryset.order_by()[:COUNT_CAP].count()

    since = timezone.now() - timedelta(hours=24)
    return {
        Tab.BLOCKING: capped(Action.objects.open_blocking().filter(_visible(user))),
        Tab.ASYNC: capped(Action.objects.open_async().filter(_visible(user))),
        Tab.ESCALATED: capped(_escalated_to(user)),
        Tab.DECIDED: capped(Decision.objects.filter(user=user, created_at__gte=since, kind__in=FINAL_KINDS)),
    }


def agents_for_filter() -> list[str]:
    return list(Agent.objects.order_by("name").values_list("name", flat=True)[:500])


def engaged_switches() -> list[KillSwitch]:
    return list(KillSwitch.objects.filter(engaged=True).order_by("scope"))


def kill_switches_all() -> list[KillSwitch]:
    """Every switch ever set, engaged ones first."""
    return list(KillSwitch.objects.order_by("-engaged", "scope"))


def action_get_for_reviewer(*, user, action_id: uuid.UUID) -> Action:
    """An action for a reviewer's page: 403 without a reviewer role, 404 if missing."""
    require_reviewer(user)
    action = (
        Action.objects.select_related("agent", "decided_by", "claimed_by", "reviewed_by").filter(pk=action_id).first()
    )
    if action is None:
        raise NotFound("No such action.")
    return action


@dataclass
class ActionContext:
    conversation: list[Action]
    conversation_cost: dict[str, float]
    similar: list[Action]
    decisions: list[Decision]
    owner_ids: list[int]


def action_context(*, action: Action, conversation_limit: int = 50, similar_limit: int = 8) -> ActionContext:
    """What a reviewer needs around one action: its conversation (with the cost
    so far), how similar actions of the same agent ended, its own decisions."""
    conversation: list[Action] = []
    if action.conversation_id:
        conversation = list(
            Action.objects.filter(agent_id=action.agent_id, conversation_id=action.conversation_id)
            .only(
                "id",
                "action_type",
                "summary",
                "status",
                "tier",
                "review_state",
                "created_at",
                "cost",
                "risk_score",
                "agent_id",
            )
            .order_by("created_at")[:conversation_limit]
        )
    cost: dict[str, float] = {"usd": 0.0, "input_tokens": 0, "output_tokens": 0}
    for item in conversation or [action]:
        for key in cost:
            value = (item.cost or {}).get(key) if isinstance(item.cost, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cost[key] += value
    similar = list(
        Action.objects.filter(agent_id=action.agent_id, action_type=action.action_type)
        .exclude(pk=action.pk)
        .filter(
            Q(tier=Tier.BLOCKING) & ~Q(status=Status.PENDING)
            | Q(tier=Tier.ASYNC_REVIEW, review_state__in=[ReviewState.CONFIRMED, ReviewState.FLAGGED])
        )
        .select_related("decided_by", "reviewed_by")
        .only(
            "id",
            "summary",
            "status",
            "tier",
            "review_state",
            "created_at",
            "decided_at",
            "decision_by_label",
            "decision_note",
            "review_note",
            "reviewed_at",
            "agent_id",
            "approved_payload_sha256",
            "decided_by__username",
            "reviewed_by__username",
        )
        .order_by("-created_at")[:similar_limit]
    )
    decisions = list(action.decisions.select_related("user").order_by("created_at"))
    owner_ids = list(action.agent.owners.values_list("pk", flat=True))
    return ActionContext(conversation, cost, similar, decisions, owner_ids)


def action_neighbours(*, user, action: Action) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The previous and next item of the action's own queue (for j/k)."""
    if action.is_open_blocking:
        queryset, field = Action.objects.open_blocking().filter(_visible(user)), "sla_due_at"
    elif action.is_open_async:
        queryset, field = Action.objects.open_async().filter(_visible(user)), "created_at"
    else:
        return None, None
    value = getattr(action, field)
    if value is None:
        return None, None
    after = Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": action.pk})
    before = Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": action.pk})
    following = queryset.filter(after).order_by(field, "pk").values_list("pk", flat=True).first()
    previous = queryset.filter(before).order_by(f"-{field}", "-pk").values_list("pk", flat=True).first()
    return previous, following


def queue_first(*, user, tab: Tab = Tab.BLOCKING) -> uuid.UUID | None:
    """The most urgent item of a queue, where a reviewer goes after deciding."""
    page = queue_page(user=user, tab=tab, filters=QueueFilters(), limit=1)
    return page.rows[0].action.pk if page.rows else None


@dataclass(frozen=True)
class SwitchReach:
    """What engaging a kill switch would do, for its confirmation page."""

    halted: int  # pending actions in scope: halted, never to be approved
    flagged: int  # async actions in scope that already went ahead and await their review: flagged


def kill_switch_reach(scope: str) -> SwitchReach:
    from reviewqueue.controls.killswitch import covered_ids

    return SwitchReach(
        halted=len(covered_ids(Action.objects.filter(status=Status.PENDING), scope)),
        flagged=len(covered_ids(Action.objects.open_async(), scope)),
    )


def ops_dead_letters(*, limit: int = 100):
    """Messages that used up their retries, newest first."""
    from reviewqueue.models import OutboxMessage, OutboxStatus

    return OutboxMessage.objects.filter(status=OutboxStatus.DEAD).order_by("-created_at")[:limit]


def ops_stats(*, since) -> dict:
    """Queue depths per tier, SLA breaches, decision latency and override rate since `since`."""
    from statistics import median

    from reviewqueue.models import (
        OutboxMessage,
        OutboxStatus,
        ReviewState,
        Status,
        Tier,
    )
    from reviewqueue.queries.feedback import override_report

    decided = Action.objects.filter(decided_at__gte=since, decided_by__isnull=False)
    latencies = sorted(
        (decided_at - created_at).total_seconds()
        for created_at, decided_at in decided.values_list("created_at", "decided_at")[:10_000]
        if decided_at is not None  # filtered above; says so to the type checker
    )
    override_rate, overrides = override_report(since=since, limit=20)
    return {
        "since": since,
        "queue_depth": {
            "blocking": Action.objects.open_blocking().count(),
            "async_review": Action.objects.open_async().count(),
            "escalated": Action.objects.escalated().count(),
        },
        "sla_breaches": {
            "expired": Action.objects.filter(status=Status.EXPIRED, decided_at__gte=since).count(),
            "async_overdue": Action.objects.filter(
                tier=Tier.ASYNC_REVIEW, review_state=ReviewState.AWAITING_REVIEW, escalation_level__gt=0
            ).count(),
        },
        "decision_latency_seconds": {
            "count": len(latencies),
            "p50": median(latencies) if latencies else None,
            "p90": latencies[int(0.9 * (len(latencies) - 1))] if latencies else None,
        },
        "override_rate": override_rate,
        "overrides_by_agent_and_type": overrides,
        "dead_letters": OutboxMessage.objects.filter(status=OutboxStatus.DEAD).count(),
    }
