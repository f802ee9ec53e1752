"""Rate limits per agent and per conversation: 429 with Retry-After, nothing written."""

from datetime import UTC, datetime

import pytest
import redis
import time_machine
from django.conf import settings

from reviewqueue.models import Action, AuditEvent
from tests.conftest import make_agent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["database", "cache"])
def backend(request, settings):
    """Both counter stores: the database, and the cache (Redis when REDIS_URL is set)."""
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "RATE_LIMIT_BACKEND": request.param}
    return request.param


START = datetime(2026, 11, 23, 12, 0, 10, tzinfo=UTC)


@time_machine.travel(START, tick=False)
def test_over_the_agent_limit_is_429_with_retry_after_and_nothing_written(db):
    client = make_agent("chatty", rate_limit_per_minute=3)
    for n in range(3):
        assert client.submit(conversation_id=f"c{n}").status_code == 201
    before = AuditEvent.objects.count()

    response = client.submit(conversation_id="c9")

    assert response.status_code == 429
    assert response["Retry-After"] == "50"  # the window ends at 12:01:00
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"limit": 3, "per": "agent", "window_seconds": 60}
    assert Action.objects.count() == 3
    assert AuditEvent.objects.count() == before


def test_the_limit_resets_with_the_next_window(db):
    client = make_agent("chatty", rate_limit_per_minute=1)
    with time_machine.travel(START, tick=False) as traveller:
        assert client.submit().status_code == 201
        assert client.submit().status_code == 429
        traveller.move_to(datetime(2026, 11, 23, 12, 0, 59, 999000, tzinfo=UTC))
        assert client.submit().status_code == 429
        traveller.move_to(datetime(2026, 11, 23, 12, 1, 0, tzinfo=UTC))
        assert client.submit().status_code == 201


@time_machine.travel(START, tick=False)
def test_each_conversation_has_its_own_limit(db):
    client = make_agent("support", rate_limit_per_minute=100, conversation_rate_limit_per_minute=2)
    assert client.submit(conversation_id="loop").status_code == 201
    assert client.submit(conversation_id="loop").status_code == 201

    response = client.submit(conversation_id="loop")

    assert response.status_code == 429
    assert response.json()["error"]["details"]["per"] == "conversation"
    assert client.submit(conversation_id="another").status_code == 201


@time_machine.travel(START, tick=False)
def test_limits_are_per_agent(db):
    one, two = make_agent("one", rate_limit_per_minute=1), make_agent("two", rate_limit_per_minute=1)
    assert one.submit().status_code == 201
    assert one.submit().status_code == 429
    assert two.submit().status_code == 201


needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="counts in Redis; CI runs it with REDIS_URL")


def _forget_scripts(admin):
    admin.script_flush()  # as a restart of Redis does


def _drop_connections(admin):
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1  # every other client, ours among them


@needs_redis
@pytest.mark.parametrize("backend", ["cache"], indirect=True)
@pytest.mark.parametrize(
    "disruption", [_forget_scripts, _drop_connections], ids=["scripts-flushed", "connections-dropped"]
)
@time_machine.travel(START, tick=False)
def test_counting_goes_on_after_redis_restarts(db, disruption):
    client = make_agent("steady", rate_limit_per_minute=2)
    assert client.submit().status_code == 201
    disruption(redis.Redis.from_url(settings.REDIS_URL))

    assert client.submit().status_code == 201
    assert client.submit().status_code == 429
