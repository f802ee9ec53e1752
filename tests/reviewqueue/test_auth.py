"""API.md, "Authentication": 401 without valid credentials, 403 when not allowed, 404 for others' actions."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.credentials.keys import (
    agent_key_issue,
    agent_keys_revoke,
    authenticate_key,
    user_token_issue,
)
from reviewqueue.models import Action, Agent, AuditEvent
from tests.conftest import make_agent, submission

pytestmark = pytest.mark.django_db


def _submit(key, body=None):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}") if key is not None else Client()
    return client.post(
        "/api/v1/actions",
        body or {"action_type": "a.read", "payload": {}, "summary": "s"},
        content_type="application/json",
    )


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


# A submission's key comes from the process's memory on PostgreSQL, and its
# write checks it in SQL. These commit, so that the key changes in another
# transaction than the one that remembered it, as in production.
committing = pytest.mark.django_db(transaction=True)


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="keys are remembered on PostgreSQL only; CI runs it")
@committing
def test_a_submission_with_a_remembered_key_reads_no_key_first(agent_client):
    assert agent_client.submit().status_code == 201
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = agent_client.submit()

    assert response.status_code == 201
    assert not any("reviewqueue_apikey" in sql for sql in statements)
    assert "reviewqueue_submit" in statements[-1]  # the one call, which checks the key itself
    with connection.execute_wrapper(record):
        assert agent_client.get("/kill-switch").status_code == 200
    assert "reviewqueue_apikey" in statements[-2]  # other endpoints read their key every time


@committing
def test_a_key_revoked_after_it_was_remembered_is_refused_at_once(agent_client):
    assert agent_client.submit().status_code == 201
    before = (Action.objects.count(), AuditEvent.objects.count())
    agent_keys_revoke(agent=agent_client.agent, actor="test")
    after_revoking = AuditEvent.objects.count()

    response = agent_client.submit(summary="after the revocation")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"
    assert Action.objects.count() == before[0]
    assert AuditEvent.objects.count() == after_revoking == before[1] + 1


@committing
def test_an_agent_deactivated_after_its_key_was_remembered_is_refused_at_once(agent_client):
    assert agent_client.submit().status_code == 201
    Agent.objects.filter(pk=agent_client.agent.pk).update(is_active=False)

    assert agent_client.submit().status_code == 401
    assert Action.objects.count() == 1


@committing
def test_scopes_narrowed_after_the_key_was_remembered_apply_at_once(agent_client):
    assert agent_client.submit(action_type="crm.lookup", tool="").status_code == 201
    Agent.objects.filter(pk=agent_client.agent.pk).update(scopes=["crm.*"])

    response = agent_client.submit(action_type="payments.refund")

    assert response.status_code == 403
    assert response.json()["error"]["details"]["scopes"] == ["crm.*"]
    assert not Action.objects.filter(action_type="payments.refund").exists()
    assert AuditEvent.objects.filter(kind="action.scope_denied").count() == 1


@committing
def test_scopes_widened_after_the_key_was_remembered_apply_at_once(db):
    client = make_agent(scopes=["crm.*"])
    assert client.submit(action_type="crm.lookup", tool="").status_code == 201
    assert client.submit(action_type="payments.refund").status_code == 403
    Agent.objects.filter(pk=client.agent.pk).update(scopes=["crm.*", "payments.*", "stripe.*"])

    assert client.submit(action_type="payments.refund").status_code == 201


@committing
def test_a_revoked_remembered_key_gets_401_not_a_replay_a_429_or_a_423(db):
    client = make_agent(rate_limit_per_minute=1)
    first = client.submit(idempotency_key="k-1")
    assert first.status_code == 201
    assert client.submit(summary="over the limit").status_code == 429
    agent_keys_revoke(agent=client.agent, actor="test")

    assert client.submit(idempotency_key="k-1").status_code == 401
    assert client.submit(summary="over the limit").status_code == 401
    kill_switch_set(scope="global", engaged=True, reason="incident", actor="cli")
    assert client.submit(summary="while halted").status_code == 401
    assert not AuditEvent.objects.filter(kind="action.refused_kill_switch").exists()


def _remembered(client) -> None:
    """The agent's key is in this process's memory (on PostgreSQL; elsewhere
    keys are read on every request, and these tests hold all the same)."""
    assert client.submit().status_code == 201
    if connection.vendor == "postgresql":
        assert authenticate_key(client.key, remembered_ok=True).remembered


BAD_INPUT = {
    "400-malformed-json": ("{broken", {}, 400),
    "400-a-key-named-twice": ('{"summary": "a", "summary": "b"}', {}, 400),
    "413-too-large": (json.dumps(submission(payload={"blob": "x" * 70_000})), {}, 413),
    "422-a-missing-field": (json.dumps({"payload": {}, "summary": "s"}), {}, 422),
    "422-an-unusable-idempotency-key": (json.dumps(submission()), {"Idempotency-Key": "has spaces"}, 422),
}


@pytest.mark.parametrize("body, headers, status", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_with_a_revoked_but_remembered_key_is_401(agent_client, body, headers, status):
    """The body and headers are refused before the service runs; that answer
    too is told only to a key the database still holds."""
    _remembered(agent_client)

    def send():
        return agent_client.http.post("/api/v1/actions", body, content_type="application/json", headers=headers)

    assert send().status_code == status  # while the key is live
    agent_keys_revoke(agent=agent_client.agent, actor="test")
    response = send()

    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "unauthorized"
    assert response["WWW-Authenticate"] == "Bearer"
