"""SLA deadlines and escalation chains, checked at their edges with a pinned clock."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from reviewqueue.actions import lifecycle
from reviewqueue.models import Action, AuditEvent, OutboxMessage, SlaPolicy, steps_validate

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 29, 0, 50, 0, tzinfo=UTC)  # the night Europe moves its clocks: UTC doesn't care
SECOND = timedelta(seconds=1)


def _submit(agent_client, **overrides):
    with time_machine.travel(T0, tick=False):
        return Action.objects.get(pk=agent_client.submit_familiar(**overrides).json()["id"])


def _sweep_at(moment):
    with time_machine.travel(moment, tick=False):
        return lifecycle.sla_sweep()


def test_a_blocking_action_carries_its_deadlines(agent_client):
    body = agent_client.submit().json()
    action = Action.objects.get(pk=body["id"])
    assert action.sla_due_at - action.created_at == timedelta(minutes=15)
    assert action.next_deadline_at - action.created_at == timedelta(minutes=7, seconds=30)
    assert [step["do"] for step in action.sla_chain] == ["escalate", "expire"]


def test_it_does_not_escalate_one_second_before_half_the_sla(agent_client):
    action = _submit(agent_client)
    assert _sweep_at(T0 + timedelta(minutes=7, seconds=30) - SECOND) == 0
    action.refresh_from_db()
    assert action.escalation_level == 0 and action.escalated_at is None


@pytest.mark.parametrize("late", [timedelta(0), SECOND, timedelta(minutes=5)])
def test_it_escalates_at_half_the_sla_to_senior_reviewers(agent_client, late):
    action = _submit(agent_client)
    deadline = T0 + timedelta(minutes=7, seconds=30)

    assert _sweep_at(deadline + late) == 2  # this one and the earlier one of its kind

    action.refresh_from_db()
    assert action.status == "pending"
    assert action.escalation_level == 1 and action.escalated_to == "senior_reviewer"
    assert action.escalated_at == deadline  # the deadline, not the time of the sweep
    event = AuditEvent.objects.get(action=action, kind="action.escalated")
    assert event.data["deadline"] == deadline.isoformat() and event.actor == "sla"
    body = agent_client.get(f"/actions/{action.pk}").json()
    assert body["escalation_level"] == 1 and body["escalated_at"].startswith("2026-03-29T00:57:30")


def test_escalation_is_idempotent(agent_client):
    action = _submit(agent_client)
    _sweep_at(T0 + timedelta(minutes=8))
    assert _sweep_at(T0 + timedelta(minutes=8)) == 0
    assert AuditEvent.objects.filter(action=action, kind="action.escalated").count() == 1


def test_it_does_not_expire_one_second_before_the_sla(agent_client):
    action = _submit(agent_client)
    _sweep_at(T0 + timedelta(minutes=15) - SECOND)
    action.refresh_from_db()
    assert action.status == "pending" and action.escalation_level == 1


@pytest.mark.parametrize("late", [timedelta(0), SECOND])
def test_it_expires_blocking_actions_fail_closed_at_the_sla(agent_client, late):
    action = _submit(agent_client)
    deadline = T0 + timedelta(minutes=15)

    _sweep_at(deadline + late)

    body = agent_client.get(f"/actions/{action.pk}").json()
    assert body["status"] == "expired" and body["may_execute"] is False
    assert body["decision"]["by"] == "sla"  # recorded distinctly from a human rejection
    assert body["decided_at"].startswith("2026-03-29T01:05:00")
    kinds = list(AuditEvent.objects.filter(action=action).values_list("kind", flat=True))
    assert kinds == ["action.submitted", "action.escalated", "action.expired"]
    assert OutboxMessage.objects.filter(action=action, kind="agent_webhook", event="action.expired").exists()


def test_a_decided_action_leaves_the_clock(agent_client, reviewer):
    action = _submit(agent_client)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        lifecycle.action_decide(action=action, user=reviewer, approve=True)
    _sweep_at(T0 + timedelta(hours=1))
    action.refresh_from_db()
    assert action.status == "approved" and action.escalation_level == 0 and action.next_deadline_at is None


def test_async_review_escalates_when_overdue_and_alerts_ops_at_twice_the_sla(agent_client):
    action = _submit(agent_client, action_type="docs.edit", tool="")
    assert action.tier == "async_review" and action.sla_due_at == T0 + timedelta(hours=24)

    _sweep_at(T0 + timedelta(hours=24) - SECOND)
    action.refresh_from_db()
    assert action.escalation_level == 0
    _sweep_at(T0 + timedelta(hours=24))
    action.refresh_from_db()
    assert action.escalation_level == 1 and action.status == "approved"
    _sweep_at(T0 + timedelta(hours=48) - SECOND)
    action.refresh_from_db()
    assert action.escalation_level == 1
    _sweep_at(T0 + timedelta(hours=48))
    action.refresh_from_db()
    assert action.escalation_level == 2 and action.next_deadline_at is None
    assert AuditEvent.objects.filter(action=action, kind="action.overdue_ops_alert").exists()


def test_a_policy_for_an_action_type_pattern_overrides_the_default(agent_client):
    SlaPolicy.objects.create(
        tier="blocking", action_type_pattern="payments.*", sla=timedelta(minutes=2), steps=[{"at": 1, "do": "expire"}]
    )
    action = _submit(agent_client)
    assert action.sla_due_at == T0 + timedelta(minutes=2)
    _sweep_at(T0 + timedelta(minutes=2))
    action.refresh_from_db()
    assert action.status == "expired" and action.escalation_level == 1
    other = _submit(agent_client, action_type="files.delete", tool="")
    assert other.sla_due_at == T0 + timedelta(minutes=15)


def test_the_defaults_come_from_the_environment_setting(agent_client, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "SLA_BLOCKING": timedelta(seconds=90)}
    action = _submit(agent_client)
    assert action.sla_due_at == T0 + timedelta(seconds=90)
    assert action.next_deadline_at == T0 + timedelta(seconds=45)


def test_the_sweep_handles_oldest_first(agent_client):
    late = _submit(agent_client)
    with time_machine.travel(T0 - timedelta(minutes=3), tick=False):
        early = Action.objects.get(pk=agent_client.submit().json()["id"])
    _sweep_at(T0 + timedelta(hours=1))
    expired = list(AuditEvent.objects.filter(kind="action.expired").values_list("action_id", flat=True))
    assert expired.index(early.pk) < expired.index(late.pk)


@pytest.mark.parametrize(
    "steps, tier",
    [
        ([], "blocking"),
        ([{"at": 1, "do": "explode"}], "blocking"),
        ([{"at": 1, "do": "expire"}], "async_review"),
        ([{"at": 1, "do": "expire"}, {"at": 0.5, "do": "escalate"}], "blocking"),
        ("soon", "blocking"),
    ],
)
def test_bad_chains_are_refused(steps, tier):
    with pytest.raises(ValidationError):
        steps_validate(steps, tier=tier)
