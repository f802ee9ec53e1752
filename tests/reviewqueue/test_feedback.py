"""Reviewers' decisions as labels, the override rate, and replaying routing."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from reviewqueue.models import Action, Decision
from reviewqueue.queries.feedback import labels, override_report

pytestmark = pytest.mark.django_db


def _decide(action_id, user, kind):
    Decision.objects.create(action_id=action_id, user=user, kind=kind, created_at=timezone.now())


def test_decisions_become_labels_and_overrides(agent_client, reviewer):
    blocked = agent_client.submit(summary="Refund $3 on charge ch_1").json()["id"]
    rejected = agent_client.submit(summary="Refund $9,000 to a new card").json()["id"]
    went_ahead = agent_client.submit_familiar(action_type="docs.edit", tool="", summary="Fix a typo").json()["id"]
    _decide(blocked, reviewer, "approve")
    _decide(rejected, reviewer, "reject")
    _decide(went_ahead, reviewer, "flag")

    by_summary = {label.action.summary: (label.label, label.weight) for label in labels()}
    assert Action.objects.get(pk=went_ahead).tier == "async_review"
    assert by_summary["Refund $3 on charge ch_1"] == ("medium", 0.3)  # a weak "too high"
    assert by_summary["Refund $9,000 to a new card"] == ("high", 1.0)
    assert by_summary["Fix a typo"] == ("high", 1.0)  # "too low"

    rates = {(r["agent"], r["action_type"]): r for r in override_report()[1]}
    refunds = rates[("billing-bot", "payments.refund")]
    assert (refunds["decisions"], refunds["too_high"], refunds["too_low"]) == (2, 1, 0)
    assert rates[("billing-bot", "docs.edit")]["override_rate"] == 1.0


def test_the_router_trains_on_reviewers_decisions_through_the_configured_source(agent_client, reviewer):
    from riskrouter.feedback import load_feedback

    assert load_feedback() == []
    rejected = agent_client.submit(summary="Refund $9,000 to a new card").json()["id"]
    _decide(rejected, reviewer, "reject")
    assert [(row.action.summary, row.label) for row in load_feedback()] == [("Refund $9,000 to a new card", "high")]


def test_replay_routing_shows_how_tiers_would_move(agent_client, capsys):
    agent_client.submit(action_type="crm.lookup", tool="")
    agent_client.submit()
    Action.objects.filter(action_type="payments.refund").update(tier="auto")  # as if routed by an older policy

    call_command("replay_routing", "--since", "7d")

    out = capsys.readouterr().out
    assert "2 actions since" in out
    assert "would go up a tier: 1" in out
    assert "payments.refund: auto → blocking" in out
