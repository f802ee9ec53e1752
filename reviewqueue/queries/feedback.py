"""Reviewers' decisions as labels for the risk router, and its override rate.

A reject or flag of an action the router let through (auto, async_review)
says it ranked it too low; an unchanged approval of a blocked action is a
weak sign it ranked it too high. riskrouter reads `labels` through
settings.RISKROUTER_FEEDBACK_SOURCE and never imports this module itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

import riskrouter
from reviewqueue.models import Decision, DecisionKind, Tier

# (tier the router chose, what the reviewer did) → (label, weight)
_LABELS = {
    (Tier.BLOCKING, DecisionKind.REJECT): ("high", 1.0),
    (Tier.BLOCKING, DecisionKind.EDIT_APPROVE): ("high", 1.0),
    (Tier.BLOCKING, DecisionKind.APPROVE): ("medium", 0.3),  # weak: maybe it needed no person
    (Tier.ASYNC_REVIEW, DecisionKind.FLAG): ("high", 1.0),
    (Tier.ASYNC_REVIEW, DecisionKind.CONFIRM): ("medium", 0.5),
    (Tier.AUTO, DecisionKind.FLAG): ("high", 1.0),
    (Tier.AUTO, DecisionKind.REJECT): ("high", 1.0),
}
TOO_LOW = {(Tier.AUTO, DecisionKind.FLAG), (Tier.AUTO, DecisionKind.REJECT), (Tier.ASYNC_REVIEW, DecisionKind.FLAG)}
TOO_HIGH = {(Tier.BLOCKING, DecisionKind.APPROVE)}


def labels() -> Iterator[riskrouter.LabeledAction]:
    """The last telling decision on each action, as a training label."""
    latest: dict = {}
    decisions = Decision.objects.select_related("action", "action__agent").exclude(kind=DecisionKind.ESCALATE)
    for decision in decisions.order_by("created_at").iterator(chunk_size=2000):
        latest[decision.action_id] = decision
    for decision in latest.values():
        action = decision.action
        label = _LABELS.get((action.tier, decision.kind))
        if label is None:
            continue
        yield riskrouter.LabeledAction(
            action=action.router_input(),
            label=label[0],
            weight=label[1],
            source=f"decision:{decision.pk}",
        )


def override_report(*, since: datetime | None = None, limit: int = 50) -> tuple[float | None, list[dict]]:
    """The override rate overall and per agent and action type, most overridden first.

    The one meaning of "override": a decision (escalations aside) that says
    the router ranked the action too low (TOO_LOW) or too high (TOO_HIGH).
    The rate is overrides / decisions, overall and per row alike.
    """
    rows: dict[tuple[str, str], dict] = defaultdict(lambda: {"decisions": 0, "too_low": 0, "too_high": 0})
    decisions = Decision.objects.exclude(kind=DecisionKind.ESCALATE)
    if since is not None:
        decisions = decisions.filter(created_at__gte=since)
    for agent, action_type, tier, kind in decisions.values_list(
        "action__agent__name", "action__action_type", "action__tier", "kind"
    ).iterator(chunk_size=5000):
        row = rows[(agent, action_type)]
        row["decisions"] += 1
        row["too_low"] += (tier, kind) in TOO_LOW
        row["too_high"] += (tier, kind) in TOO_HIGH
    report = [
        {
            "agent": agent,
            "action_type": action_type,
            **row,
            "override_rate": (row["too_low"] + row["too_high"]) / row["decisions"],
        }
        for (agent, action_type), row in rows.items()
    ]
    report.sort(key=lambda r: (-r["override_rate"], -r["decisions"], r["agent"], r["action_type"]))
    total = sum(r["decisions"] for r in report)
    overall = sum(r["too_low"] + r["too_high"] for r in report) / total if total else None
    return overall, report[:limit]
