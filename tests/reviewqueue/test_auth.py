"""API.md, "Authentication": 401 without valid credentials, 403 when not allowed, 404 for others' actions."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from reviewqueue.credentials import agent_key_issue, agent_keys_revoke, user_token_issue

pytestmark = pytest.mark.django_db


def _submit(key, body=None):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}") if key is not None else Client()
    return client.post("/api/v1/actions", body or {"action_type": "a.read", "payload": {}, "summary": "s"},
                       content_type="application/json")


@pytest.mark.parametrize("key", [None, "", "rqa_not-a-real-key", "x" * 500])
def test_missing_or_bad_credentials_are_401(agent_client, key):
    response = _submit(key)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_non_bearer_scheme_is_401(agent_client):
    client = Client(HTTP_AUTHORIZATION=f"Basic {agent_client.key}")
    assert client.get("/api/v1/kill-switch").status_code == 401


def test_credentials_are_checked_before_the_body(agent_client):
    client = Client(HTTP_AUTHORIZATION="Bearer nope")
    response = client.post("/api/v1/actions", "{broken", content_type="application/json")
    assert response.status_code == 401


def test_keys_are_stored_hashed(agent_client):
    stored = agent_client.agent.keys.get()
    assert agent_client.key not in (stored.key_hash, stored.prefix)
    assert agent_client.key.startswith(stored.prefix)


def test_a_rotated_key_stops_working_and_the_new_one_works(agent_client):
    new_key = agent_key_issue(agent=agent_client.agent, actor="test")

    assert _submit(agent_client.key).status_code == 401
    assert _submit(new_key).status_code == 201


def test_a_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(agent_client):
    new_key = agent_key_issue(agent=agent_client.agent, actor="test", grace=timedelta(minutes=10))

    assert _submit(agent_client.key).status_code == 201
    assert _submit(new_key).status_code == 201
    with time_machine.travel(timezone.now() + timedelta(minutes=10, seconds=1)):
        assert _submit(agent_client.key).status_code == 401
        assert _submit(new_key).status_code == 201


def test_a_revoked_key_is_401(agent_client):
    agent_keys_revoke(agent=agent_client.agent, actor="test")
    assert _submit(agent_client.key).status_code == 401


def test_a_deactivated_agent_is_401(agent_client):
    agent_client.agent.is_active = False
    agent_client.agent.save()
    assert _submit(agent_client.key).status_code == 401


def test_a_user_token_cannot_act_as_an_agent(ops_user):
    response = _submit(user_token_issue(user=ops_user, actor="test"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_another_agents_action_is_404_everywhere(agent_client, other_agent_client):
    action_id = agent_client.submit().json()["id"]

    for response in (
        other_agent_client.get(f"/actions/{action_id}"),
        other_agent_client.get(f"/actions/{action_id}/wait", timeout=0),
        other_agent_client.post(f"/actions/{action_id}/cancel"),
        other_agent_client.post(f"/actions/{action_id}/outcome", {"status": "succeeded"}),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert agent_client.get(f"/actions/{action_id}").json()["status"] == "pending"


def test_an_unknown_or_malformed_action_id_is_404(agent_client):
    assert agent_client.get("/actions/0190f6b8-0000-7000-8000-000000000000").status_code == 404
    response = agent_client.get("/actions/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ops_endpoints_need_an_ops_user(agent_client, reviewer, ops_client):
    assert Client().get("/api/v1/ops/kill-switch").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Bearer {agent_client.key}").get("/api/v1/ops/kill-switch").status_code == 403
    reviewer_token = user_token_issue(user=reviewer, actor="test")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {reviewer_token}").get("/api/v1/ops/kill-switch").status_code == 403
    assert ops_client.get("/api/v1/ops/kill-switch").status_code == 200


def test_a_new_user_token_revokes_the_previous_one(ops_user):
    first = user_token_issue(user=ops_user, actor="test")
    second = user_token_issue(user=ops_user, actor="test")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {first}").get("/api/v1/ops/kill-switch").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Bearer {second}").get("/api/v1/ops/kill-switch").status_code == 200
