"""API.md, "Follow an action": get, long-poll wait, cancel, outcome."""

import threading
import time

import pytest

from reviewqueue.actions import lifecycle
from reviewqueue.models import Action, AuditEvent

pytestmark = pytest.mark.django_db


def test_get_returns_the_action_as_submitted(agent_client):
    submitted = agent_client.submit().json()
    fetched = agent_client.get(f"/actions/{submitted['id']}").json()
    assert fetched == submitted


def test_wait_returns_at_once_for_a_decided_action(agent_client):
    action_id = agent_client.submit(action_type="crm.lookup", tool="").json()["id"]
    started = time.monotonic()
    body = agent_client.get(f"/actions/{action_id}/wait", timeout=30).json()
    assert body["status"] == "approved"
    assert time.monotonic() - started < 1


def test_wait_times_out_with_the_action_as_it_stands(agent_client):
    action_id = agent_client.submit().json()["id"]
    started = time.monotonic()
    body = agent_client.get(f"/actions/{action_id}/wait", timeout=0.3).json()
    elapsed = time.monotonic() - started
    assert body["status"] == "pending"
    assert 0.3 <= elapsed < 2


@pytest.mark.parametrize("timeout", ["61", "-1", "soon", "nan"])
def test_wait_refuses_a_bad_timeout(agent_client, timeout):
    action_id = agent_client.submit().json()["id"]
    response = agent_client.get(f"/actions/{action_id}/wait", timeout=timeout)
    assert response.status_code == 422
    assert response.json()["error"]["location" if False else "code"] == "validation_error"


@pytest.mark.django_db(transaction=True)
def test_wait_returns_when_a_reviewer_approves(agent_client, reviewer):
    action_id = agent_client.submit().json()["id"]

    def approve_soon():
        time.sleep(0.3)
        lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=True)

    thread = threading.Thread(target=approve_soon)
    thread.start()
    started = time.monotonic()
    body = agent_client.get(f"/actions/{action_id}/wait", timeout=10).json()
    elapsed = time.monotonic() - started
    thread.join()

    assert body["status"] == "approved" and body["may_execute"] is True
    assert body["decision"] == {"by": "rita", "note": ""}
    assert 0.3 <= elapsed < 1.5


def test_cancel_withdraws_a_pending_action(agent_client):
    action_id = agent_client.submit().json()["id"]

    body = agent_client.post(f"/actions/{action_id}/cancel").json()

    assert body["status"] == "cancelled" and body["may_execute"] is False
    assert body["decision"]["by"] == "agent"
    assert AuditEvent.objects.filter(action_id=action_id, kind="action.cancelled").exists()


def test_cancel_of_a_decided_action_is_409_and_changes_nothing(agent_client):
    action_id = agent_client.submit(action_type="crm.lookup", tool="").json()["id"]

    response = agent_client.post(f"/actions/{action_id}/cancel")

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "illegal_transition",
        "message": "The action is approved; it can't become cancelled.",
        "details": {"status": "approved", "requested": "cancelled"},
    }
    assert Action.objects.get(pk=action_id).status == "approved"


def test_an_outcome_is_recorded_once_for_an_executable_action(agent_client):
    action_id = agent_client.submit(action_type="crm.lookup", tool="").json()["id"]

    body = agent_client.post(f"/actions/{action_id}/outcome", {"status": "failed", "detail": "timeout"}).json()
    again = agent_client.post(f"/actions/{action_id}/outcome", {"status": "succeeded"})

    assert body["outcome"]["status"] == "failed" and body["outcome"]["detail"] == "timeout"
    assert again.status_code == 409
    assert Action.objects.get(pk=action_id).outcome == "failed"


def test_an_outcome_for_an_action_that_may_not_execute_is_409(agent_client):
    action_id = agent_client.submit().json()["id"]
    response = agent_client.post(f"/actions/{action_id}/outcome", {"status": "succeeded"})
    assert response.status_code == 409
    assert Action.objects.get(pk=action_id).outcome == ""


@pytest.mark.parametrize("body", [{"status": "done"}, {"status": "succeeded", "extra": 1}, {}])
def test_a_bad_outcome_is_422(agent_client, body):
    action_id = agent_client.submit(action_type="crm.lookup", tool="").json()["id"]
    assert agent_client.post(f"/actions/{action_id}/outcome", body).status_code == 422
