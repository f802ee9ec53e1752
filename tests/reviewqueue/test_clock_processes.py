"""The clock with real processes: a Celery worker and beat on a real Redis
broker, escalating and expiring on the real clock, surviving kills."""

import time
from datetime import timedelta

import pytest
from django.db.models import Count

from reviewqueue.models import Action, AuditEvent
from tests.conftest import make_agent
from tests.processes import Broker, Celery, database_url, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clock(tmp_path, settings):
    """Worker and beat on a private broker; blocking SLA of 4 s (escalate at 2 s)."""
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "SLA_BLOCKING": timedelta(seconds=4)}
    broker = Broker(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker.url,
        "REVIEWQUEUE_VAR_DIR": str(tmp_path),
        "REVIEWQUEUE_ENV": "test",
        "PYTHONUNBUFFERED": "1",
    }
    worker, beat = Celery("worker", env, tmp_path), Celery("beat", env, tmp_path)
    worker.start()
    beat.start()
    yield broker, worker, beat
    for process in (beat, worker):
        process.stop()
    broker.stop()


def _lateness(kind):
    """Seconds between each event's deadline and when it was recorded."""
    from datetime import datetime

    return [
        (event.created_at - datetime.fromisoformat(event.data["deadline"])).total_seconds()
        for event in AuditEvent.objects.filter(kind=kind)
    ]


def _all_done(ids):
    return lambda: Action.objects.filter(pk__in=ids, status="expired").count() == len(ids)


def _assert_each_step_exactly_once(ids):
    counts = {
        (row["action_id"], row["kind"]): row["n"]
        for row in AuditEvent.objects.filter(action_id__in=ids, kind__in=["action.escalated", "action.expired"])
        .values("action_id", "kind")
        .annotate(n=Count("seq"))
    }
    assert len(counts) == 2 * len(ids), "a step was missed"
    assert set(counts.values()) == {1}, "a step was done twice"


def test_a_blocking_action_escalates_at_half_its_sla_and_expires_at_its_sla(clock):
    agent = make_agent("clockwork", rate_limit_per_minute=1000)
    action_id = agent.submit().json()["id"]

    assert wait_until(lambda: Action.objects.get(pk=action_id).escalation_level == 1, timeout=6)
    assert Action.objects.get(pk=action_id).status == "pending"
    assert wait_until(_all_done([action_id]), timeout=8)

    body = agent.get(f"/actions/{action_id}").json()
    assert body["status"] == "expired" and body["may_execute"] is False and body["decision"]["by"] == "sla"
    assert max(_lateness("action.escalated") + _lateness("action.expired")) < 2.0


def test_a_worker_killed_mid_run_and_restarted_misses_nothing_and_doubles_nothing(clock):
    _, worker, _ = clock
    agent = make_agent("clockwork", rate_limit_per_minute=10_000, conversation_rate_limit_per_minute=10_000)
    ids = []
    for _ in range(60):  # deadlines spread over about three seconds
        ids.append(agent.submit().json()["id"])
        time.sleep(0.05)

    wait_until(lambda: AuditEvent.objects.filter(kind="action.escalated").exists(), timeout=10)
    worker.kill()  # -9, while escalations are under way
    time.sleep(2)
    worker.start()

    assert wait_until(_all_done(ids), timeout=30), (
        Action.objects.filter(pk__in=ids).values("status").annotate(n=Count("id"))
    )
    _assert_each_step_exactly_once(ids)


def test_a_broker_restart_misses_nothing_and_doubles_nothing(clock):
    broker, _, _ = clock
    agent = make_agent("clockwork", rate_limit_per_minute=10_000, conversation_rate_limit_per_minute=10_000)
    ids = [agent.submit().json()["id"] for _ in range(30)]

    broker.stop()
    time.sleep(3)  # deadlines pass while the broker is away
    broker.start()

    assert wait_until(_all_done(ids), timeout=40)
    _assert_each_step_exactly_once(ids)


def test_beat_down_for_a_minute_catches_up_oldest_first(clock):
    _, _, beat = clock
    beat.stop()
    agent = make_agent("clockwork", rate_limit_per_minute=10_000, conversation_rate_limit_per_minute=10_000)
    ids = []
    for _ in range(20):
        ids.append(agent.submit().json()["id"])
        time.sleep(0.1)
    time.sleep(60)  # every deadline passes while beat is down
    assert not AuditEvent.objects.filter(kind="action.escalated").exists()

    beat.start()

    assert wait_until(_all_done(ids), timeout=30)
    _assert_each_step_exactly_once(ids)
    for kind in ("action.escalated", "action.expired"):
        deadlines = [e.data["deadline"] for e in AuditEvent.objects.filter(kind=kind).order_by("seq")]
        assert deadlines == sorted(deadlines), f"{kind} did not catch up oldest first"
