"""Idempotency-Key, like the best payment APIs."""

import threading
from datetime import timedelta

import httpx
import pytest
import time_machine
from django.utils import timezone

from reviewqueue.housekeeping import purge_expired
from reviewqueue.models import Action, IdempotencyKey
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def test_the_same_key_and_body_return_the_original_action_with_200(agent_client):
    first = agent_client.submit(idempotency_key="refund-8812")
    second = agent_client.submit(idempotency_key="refund-8812")

    assert first.status_code == 201 and second.status_code == 200
    assert second.json() == first.json()
    assert Action.objects.count() == 1


def test_the_same_key_with_a_different_body_is_409(agent_client):
    first = agent_client.submit(idempotency_key="refund-8812").json()
    response = agent_client.submit(idempotency_key="refund-8812", summary="Refund $4,200 instead")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["details"]["action_id"] == first["id"]
    assert Action.objects.count() == 1


def test_the_replay_shows_the_action_as_it_stands_now(agent_client):
    first = agent_client.submit(idempotency_key="k1").json()
    agent_client.post(f"/actions/{first['id']}/cancel")
    assert agent_client.submit(idempotency_key="k1").json()["status"] == "cancelled"


def test_keys_are_per_agent(agent_client, other_agent_client):
    mine = agent_client.submit(idempotency_key="shared").json()
    theirs = other_agent_client.submit(idempotency_key="shared")

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]


def test_keys_are_kept_for_24_hours_then_purged(agent_client):
    agent_client.submit(idempotency_key="day-old")

    with time_machine.travel(timezone.now() + timedelta(hours=23, minutes=59)):
        purge_expired()
        assert agent_client.submit(idempotency_key="day-old").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        purge_expired()
        assert not IdempotencyKey.objects.exists()
        assert agent_client.submit(idempotency_key="day-old").status_code == 201


def test_a_replay_does_not_use_up_the_rate_limit(db):
    client = make_agent("tight", rate_limit_per_minute=2)
    assert client.submit(idempotency_key="a").status_code == 201
    for _ in range(5):
        assert client.submit(idempotency_key="a").status_code == 200
    assert client.submit(idempotency_key="b").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_exactly_one_action(live_server):
    client = make_agent("racer", rate_limit_per_minute=1000)
    barrier = threading.Barrier(8)
    responses = []

    def submit():
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            barrier.wait()
            responses.append(http.post(
                "/api/v1/actions", json=submission(),
                headers={"Authorization": f"Bearer {client.key}", "Idempotency-Key": "one-and-only"},
            ))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert Action.objects.count() == 1
