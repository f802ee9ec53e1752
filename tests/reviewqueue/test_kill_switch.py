"""The kill switch on the submit path: 423, recorded, and visible to the agent."""

import threading
import time

import pytest

from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.models import Action, AuditEvent, KillSwitch

pytestmark = pytest.mark.django_db

# Outside any transaction a submission is one call that expects no switch
# engaged (PostgreSQL); inside a test's transaction it reads them first.
BOTH_WRITE_PATHS = pytest.mark.parametrize(
    "write_path",
    [
        pytest.param("inside a transaction", id="in-transaction"),
        pytest.param("committing", id="committing", marks=pytest.mark.django_db(transaction=True)),
    ],
)


@BOTH_WRITE_PATHS
def test_an_engaged_global_switch_refuses_submissions_with_423_and_records_them(agent_client, write_path):
    kill_switch_set(scope="global", engaged=True, reason="incident 42", actor="user:olga")

    response = agent_client.submit()

    assert response.status_code == 423
    error = response.json()["error"]
    assert error["code"] == "kill_switch_engaged"
    assert error["details"] == {"scope": "global", "reason": "incident 42"}
    assert not Action.objects.exists()
    attempt = AuditEvent.objects.get(kind="action.refused_kill_switch")
    assert attempt.agent == agent_client.agent and attempt.data["scope"] == "global"


@BOTH_WRITE_PATHS
def test_a_switch_takes_effect_on_the_very_next_submission_and_release_restores(agent_client, write_path):
    assert agent_client.submit().status_code == 201
    kill_switch_set(scope="agent:billing-bot", engaged=True, reason="looping", actor="cli")
    assert agent_client.submit().status_code == 423
    kill_switch_set(scope="agent:billing-bot", engaged=False, reason="fixed", actor="cli")
    assert agent_client.submit().status_code == 201


@BOTH_WRITE_PATHS
def test_scopes_cover_only_their_agent_or_action_types(agent_client, other_agent_client, write_path):
    kill_switch_set(scope="action_type:payments.*", engaged=True, reason="bad refunds", actor="cli")

    assert agent_client.submit(action_type="payments.refund").status_code == 423
    assert agent_client.submit(action_type="crm.lookup", tool="").status_code == 201
    kill_switch_set(scope="agent:crm-bot", engaged=True, reason="x", actor="cli")
    assert other_agent_client.submit(action_type="crm.lookup", tool="").status_code == 423
    assert agent_client.submit(action_type="crm.lookup", tool="").status_code == 201


def test_engaging_halts_pending_actions_in_scope(agent_client, other_agent_client):
    mine = agent_client.submit().json()["id"]
    theirs = other_agent_client.submit().json()["id"]

    _, halted = kill_switch_set(scope="agent:billing-bot", engaged=True, reason="runaway", actor="cli")

    assert halted == 1
    body = agent_client.get(f"/actions/{mine}").json()
    assert body["status"] == "halted" and body["may_execute"] is False
    assert body["decision"] == {"by": "kill_switch", "note": "runaway"}
    assert other_agent_client.get(f"/actions/{theirs}").json()["status"] == "pending"


@pytest.mark.django_db(transaction=True)
def test_engaging_wakes_a_waiting_agent(agent_client):
    action_id = agent_client.submit().json()["id"]
    timer = threading.Timer(
        0.3, kill_switch_set, kwargs={"scope": "global", "engaged": True, "reason": "stop", "actor": "cli"}
    )
    timer.start()
    started = time.monotonic()
    body = agent_client.get(f"/actions/{action_id}/wait", timeout=10).json()
    timer.join()
    assert body["status"] == "halted"
    assert time.monotonic() - started < 1.3


def test_the_agent_can_ask_whether_it_may_submit(agent_client):
    assert agent_client.get("/kill-switch").json() == {"may_submit": True, "engaged": []}
    kill_switch_set(scope="action_type:payments.*", engaged=True, reason="refund bug", actor="cli")
    body = agent_client.get("/kill-switch").json()
    assert body["may_submit"] is True  # only payments.* is stopped
    assert [s["scope"] for s in body["engaged"]] == ["action_type:payments.*"]
    kill_switch_set(scope="global", engaged=True, reason="incident", actor="cli")
    body = agent_client.get("/kill-switch").json()
    assert body["may_submit"] is False
    assert {s["scope"] for s in body["engaged"]} == {"global", "action_type:payments.*"}


def test_ops_toggle_it_through_the_api_with_a_reason(agent_client, ops_client):
    pending = agent_client.submit().json()["id"]
    response = ops_client.post(
        "/api/v1/ops/kill-switch",
        {"scope": "global", "engaged": True, "reason": "incident 7"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["halted"] == 1 and response.json()["changed_by"] == "user:olga"
    assert AuditEvent.objects.filter(kind="kill_switch.engaged", actor="user:olga").exists()
    assert Action.objects.get(pk=pending).status == "halted"
    listed = ops_client.get("/api/v1/ops/kill-switch").json()
    assert [(s["scope"], s["engaged"]) for s in listed] == [("global", True)]


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "global", "engaged": True, "reason": ""},
        {"scope": "global", "engaged": True},
        {"scope": "everything", "engaged": True, "reason": "x"},
        {"scope": "global", "engaged": "yes", "reason": "x"},
    ],
)
def test_ops_api_refuses_bad_toggles(ops_client, body):
    response = ops_client.post("/api/v1/ops/kill-switch", body, content_type="application/json")
    assert response.status_code == 422
    assert not KillSwitch.objects.exists()
