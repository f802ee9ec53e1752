"""The outbox: signed agent webhooks, group notifications, retries, the circuit
breaker and dead letters, delivered to a real local HTTP server."""

import hashlib
import hmac
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone

from reviewqueue.actions import lifecycle
from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.models import (
    Action,
    CircuitBreaker,
    NotificationChannel,
    OutboxMessage,
)
from reviewqueue.notify import outbox as notifications

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings):
    """The receivers here listen on 127.0.0.1: allow-list it, as a team with an internal receiver would."""
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


def _deliver_all():
    return [
        notifications.deliver(pk) for pk in OutboxMessage.objects.filter(status="pending").values_list("pk", flat=True)
    ]


def test_the_agent_gets_a_signed_webhook_with_the_action_on_every_status_change(agent_client, reviewer, hook_server):
    action_id = agent_client.submit(callback_url=f"{hook_server.url}/hooks").json()["id"]
    assert not OutboxMessage.objects.exists()  # the 201 itself is the answer to a submission

    lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=True)
    assert _deliver_all() == ["delivered"]

    [hook] = hook_server.received
    secret = agent_client.agent.webhook_secret.encode()
    expected = "sha256=" + hmac.new(secret, hook["body"], hashlib.sha256).hexdigest()
    assert hook["headers"]["X-Reviewqueue-Signature"] == expected
    assert hook["json"]["id"] == action_id and hook["json"]["status"] == "approved"
    assert hook["json"]["may_execute"] is True and hook["path"] == "/hooks"
    assert OutboxMessage.objects.get().status == "delivered"


def test_no_message_survives_a_transition_that_rolled_back(agent_client, reviewer, hook_server):
    action = Action.objects.get(pk=agent_client.submit(callback_url=hook_server.url).json()["id"])
    lifecycle.action_cancel(action=action)
    with pytest.raises(Exception):
        lifecycle.action_cancel(action=action)  # 409: already cancelled
    assert OutboxMessage.objects.count() == 1


def test_a_failing_endpoint_is_retried_three_times_with_backoff_then_dead_lettered(agent_client, hook_server, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "BREAKER_FAILURES": 100}
    hook_server.status = 500
    action = Action.objects.get(pk=agent_client.submit(callback_url=hook_server.url).json()["id"])
    lifecycle.action_cancel(action=action)
    message = OutboxMessage.objects.get()
    base = settings.REVIEWQUEUE["OUTBOX_BACKOFF_SECONDS"]

    outcomes = []
    for attempt in range(1, 5):
        before = timezone.now()
        outcomes.append(notifications.deliver(message.pk))
        message.refresh_from_db()
        if message.status == "pending":
            delay = (message.next_attempt_at - before).total_seconds()
            assert 0 <= delay <= base * 2**attempt + 1  # full jitter: anywhere up to the cap
            with time_machine.travel(message.next_attempt_at - timedelta(milliseconds=1), tick=False):
                assert notifications.deliver(message.pk) == "not due"
            OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())  # due now

    assert outcomes == ["retry", "retry", "retry", "dead"]
    assert len(hook_server.received) == 4  # the first try and 3 retries
    assert message.status == "dead" and "500" in message.last_error
    assert notifications.deliver(message.pk) == "not due"


def test_the_circuit_opens_after_repeated_failures_and_lets_one_probe_through(agent_client, hook_server, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "BREAKER_FAILURES": 3}
    hook_server.status = 503
    actions = [Action.objects.get(pk=agent_client.submit(callback_url=hook_server.url).json()["id"]) for _ in range(5)]
    for action in actions:
        lifecycle.action_cancel(action=action)
    ids = list(OutboxMessage.objects.order_by("pk").values_list("pk", flat=True))

    assert [notifications.deliver(pk) for pk in ids] == ["retry", "retry", "retry", "circuit open", "circuit open"]
    assert len(hook_server.received) == 3  # the open circuit spares the failing endpoint
    assert OutboxMessage.objects.get(pk=ids[3]).attempts == 0  # deferred, not counted as a try

    breaker = CircuitBreaker.objects.get()
    hook_server.status = 200
    with time_machine.travel(breaker.open_until + timedelta(seconds=1)):
        OutboxMessage.objects.filter(pk__in=ids[3:]).update(next_attempt_at=timezone.now())
        assert notifications._breaker_allows(breaker.pk, timezone.now()) is True  # the single probe
        assert notifications._breaker_allows(breaker.pk, timezone.now()) is False  # nobody else meanwhile
        CircuitBreaker.objects.filter(pk=breaker.pk).update(probe_started_at=None)
        assert notifications.deliver(ids[3]) == "delivered"
        assert notifications.deliver(ids[4]) == "delivered"  # closed again
    assert CircuitBreaker.objects.get().open_until is None


def test_groups_hear_about_the_events_they_subscribed_to(agent_client, hook_server, senior_reviewer):
    senior_reviewer.email = "sam@acme.example"
    senior_reviewer.save()
    seniors = Group.objects.get(name="senior_reviewer")
    NotificationChannel.objects.create(name="seniors mail", group=seniors, kind="email", events=["action.escalated"])
    NotificationChannel.objects.create(
        name="ops hook",
        group=seniors,
        kind="webhook",
        target=f"{hook_server.url}/ops",
        events=["action.escalated", "kill_switch.*"],
    )
    NotificationChannel.objects.create(
        name="quiet", group=seniors, kind="webhook", target=hook_server.url, events=["action.expired"]
    )
    action = Action.objects.get(pk=agent_client.submit().json()["id"])

    with time_machine.travel(action.next_deadline_at):
        lifecycle.sla_sweep()
        _deliver_all()

    assert [m.to for m in mail.outbox] == [["sam@acme.example"]]
    assert "escalated" in mail.outbox[0].subject and action.summary in mail.outbox[0].body
    [hook] = hook_server.received
    assert hook["path"] == "/ops" and hook["json"]["event"] == "action.escalated"
    assert hook["json"]["action"]["id"] == str(action.pk)


def test_engaging_the_kill_switch_notifies_agents_and_ops_and_flags_async_actions(
    agent_client, other_agent_client, hook_server, ops_user
):
    NotificationChannel.objects.create(
        name="ops",
        group=Group.objects.get(name="ops"),
        kind="slack",
        target=f"{hook_server.url}/slack",
        events=["kill_switch.*"],
    )
    pending = agent_client.submit(callback_url=f"{hook_server.url}/agent").json()["id"]
    untouched = other_agent_client.submit_familiar(action_type="docs.edit", tool="").json()["id"]
    went_ahead = agent_client.submit(action_type="docs.edit", tool="", callback_url=f"{hook_server.url}/agent").json()
    assert Action.objects.get(pk=untouched).tier == went_ahead["tier"] == "async_review"

    kill_switch_set(scope="agent:billing-bot", engaged=True, reason="runaway refunds", actor="user:olga")
    _deliver_all()

    by_path = {h["path"]: h["json"] for h in hook_server.received if h["path"] == "/slack"}
    assert "kill switch: engaged" in by_path["/slack"]["text"]
    agent_hooks = sorted(
        (h["json"]["id"], h["json"]["status"], h["json"]["review_state"])
        for h in hook_server.received
        if h["path"] == "/agent"
    )
    assert agent_hooks == sorted([(pending, "halted", "none"), (went_ahead["id"], "approved", "flagged")])
    assert Action.objects.get(pk=untouched).review_state == "awaiting_review"


def test_dead_letters_and_stats_are_visible_to_ops(agent_client, hook_server, ops_client, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "BREAKER_FAILURES": 100}
    hook_server.status = 500
    action = Action.objects.get(pk=agent_client.submit(callback_url=hook_server.url).json()["id"])
    lifecycle.action_cancel(action=action)
    message = OutboxMessage.objects.get()
    for _ in range(4):
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        notifications.deliver(message.pk)

    [dead] = ops_client.get("/api/v1/ops/dead-letters").json()
    assert dead["event"] == "action.cancelled" and dead["attempts"] == 4 and dead["action_id"] == str(action.pk)
    stats = ops_client.get("/api/v1/ops/stats").json()
    assert stats["dead_letters"] == 1 and stats["queue_depth"]["blocking"] == 0
    assert agent_client.http.get("/api/v1/ops/dead-letters").status_code == 403
