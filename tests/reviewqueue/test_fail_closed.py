"""If the service can't read its state, nothing is approved: 503, JSON."""

import socket
import time

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_missing_kill_switch_table_fails_closed_with_503(agent_client):
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reviewqueue_killswitch RENAME TO reviewqueue_killswitch_away")
    try:
        response = agent_client.submit(action_type="crm.lookup", tool="")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE reviewqueue_killswitch_away RENAME TO reviewqueue_killswitch")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    from reviewqueue.models import Action

    assert not Action.objects.exists()


def test_rate_limits_that_cant_be_counted_fail_closed_with_503(agent_client, settings):
    """Redis is configured but down: no count, no approval, nothing written."""
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "RATE_LIMIT_BACKEND": "cache"}
    from reviewqueue.models import Action, AuditEvent

    before = AuditEvent.objects.count()
    response = agent_client.submit(action_type="crm.lookup", tool="")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == {
        "code": "service_unavailable",
        "message": "The service can't reach Redis; retry later.",
    }
    assert not Action.objects.exists()
    assert AuditEvent.objects.count() == before


def test_a_redis_that_stops_answering_fails_closed_within_seconds(agent_client, settings):
    """It accepts connections and never replies (hung, or a network that drops
    packets): the submission gets 503 after the Redis timeout, not a hang."""
    from reviewqueue.models import Action

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever reads
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "RATE_LIMIT_BACKEND": "cache"}
        started = time.monotonic()
        response = agent_client.submit(action_type="crm.lookup", tool="")
        took = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["error"]["message"] == "The service can't reach Redis; retry later."
    assert took < settings.REDIS_TIMEOUT_SECONDS + 2
    assert not Action.objects.exists()
