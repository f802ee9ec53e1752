"""The ops kill-switch page: ops only, a reason, and a confirmation before anything happens."""

import pytest

from reviewqueue.models import Action, AuditEvent, KillSwitch
from tests import dashboard as d


@pytest.fixture
def olga(client, ops_user):
    client.force_login(ops_user)
    return client


def test_only_ops_and_admins_may_open_or_use_it(client, reviewer, db):
    client.force_login(reviewer)
    assert client.get("/ops/kill-switches/").status_code == 403
    assert (
        client.post(
            "/ops/kill-switches/change", {"scope_kind": "global", "engaged": "true", "reason": "x", "confirmed": "yes"}
        ).status_code
        == 403
    )
    assert not KillSwitch.objects.exists()


def test_engaging_needs_a_reason(olga, db):
    response = olga.post("/ops/kill-switches/change", {"scope_kind": "global", "engaged": "true", "reason": " "})
    assert response.status_code == 422 and "A reason is required." in response.content.decode()
    assert not KillSwitch.objects.exists()


def test_engaging_asks_for_confirmation_then_halts_pending_actions_in_scope(olga, agent_client):
    action = d.blocking(agent_client)
    form = {"scope_kind": "agent", "scope_value": "billing-bot", "engaged": "true", "reason": "runaway refunds"}
    confirm = olga.post("/ops/kill-switches/change", form)
    html = confirm.content.decode()
    assert confirm.status_code == 200 and 'id="pending-count">1<' in html and "agent:billing-bot" in html
    assert not KillSwitch.objects.exists()  # nothing happens before the confirmation
    done = olga.post(
        "/ops/kill-switches/change",
        {"scope": "agent:billing-bot", "engaged": "true", "reason": "runaway refunds", "confirmed": "yes"},
        follow=True,
    )
    assert "1 pending action(s) halted" in done.content.decode()
    assert KillSwitch.objects.get(scope="agent:billing-bot").engaged
    assert Action.objects.get(pk=action.pk).status == "halted"
    assert AuditEvent.objects.filter(kind="kill_switch.engaged", actor="user:olga").exists()
    assert agent_client.submit().status_code == 423


def test_releasing_from_the_list(olga, agent_client):
    from reviewqueue.actions.kill_switches import kill_switch_set

    kill_switch_set(scope="global", engaged=True, reason="incident", actor="user:olga")
    assert "Release…" in olga.get("/ops/kill-switches/").content.decode()
    olga.post(
        "/ops/kill-switches/change", {"scope": "global", "engaged": "false", "reason": "resolved", "confirmed": "yes"}
    )
    assert not KillSwitch.objects.get(scope="global").engaged
    assert agent_client.submit().status_code == 201


def test_a_bad_scope_is_refused_with_a_message(olga, db):
    response = olga.post(
        "/ops/kill-switches/change",
        {"scope_kind": "agent", "scope_value": "no spaces allowed", "engaged": "true", "reason": "x"},
    )
    assert response.status_code == 422 and "scope must be" in response.content.decode()


def test_the_confirmation_says_how_many_actions_that_already_went_ahead_will_be_flagged(olga, agent_client):
    went_ahead = d.async_review(agent_client)
    form = {"scope_kind": "agent", "scope_value": "billing-bot", "engaged": "true", "reason": "runaway refunds"}
    html = olga.post("/ops/kill-switches/change", form).content.decode()
    assert 'id="flag-count">1<' in html and "will be flagged for a reviewer" in html
    olga.post(
        "/ops/kill-switches/change",
        {"scope": "agent:billing-bot", "engaged": "true", "reason": "runaway refunds", "confirmed": "yes"},
    )
    assert Action.objects.get(pk=went_ahead.pk).review_state == "flagged"  # what the page said
