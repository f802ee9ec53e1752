"""Each concept has one owner, and the pages, the API and the stats agree on it."""

import itertools

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from reviewqueue.actions import lifecycle
from reviewqueue.credentials.keys import user_token_issue
from reviewqueue.models import Action, AuditEvent, ReviewState, Status, Tier
from tests import dashboard as d


def _admin_group_member():
    user = User.objects.create_user("ada", password="pw-ada")
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


def test_a_member_of_the_admin_group_may_use_the_ops_page_and_the_ops_api_alike(db):
    ada = _admin_group_member()
    page = Client()
    page.force_login(ada)
    assert page.get("/ops/kill-switches/").status_code == 200
    api = Client(HTTP_AUTHORIZATION=f"Bearer {user_token_issue(user=ada, actor='test')}")
    assert api.get("/api/v1/ops/stats").status_code == 200
    assert api.get("/api/v1/ops/kill-switch").status_code == 200


def test_a_reviewer_is_refused_by_the_ops_page_and_the_ops_api_alike(reviewer):
    page = Client()
    page.force_login(reviewer)
    assert page.get("/ops/kill-switches/").status_code == 403
    api = Client(HTTP_AUTHORIZATION=f"Bearer {user_token_issue(user=reviewer, actor='test')}")
    response = api.get("/api/v1/ops/stats")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_an_open_item_means_the_same_to_a_row_and_to_a_query(agent_client):
    action = d.submit(agent_client)
    expected_open = {(Status.PENDING, Tier.BLOCKING, state) for state in ReviewState}
    expected_open.add((Status.APPROVED, Tier.ASYNC_REVIEW, ReviewState.AWAITING_REVIEW))
    for status, tier, review_state in itertools.product(Status, Tier, ReviewState):
        Action.objects.filter(pk=action.pk).update(status=status, tier=tier, review_state=review_state)
        action.refresh_from_db()
        in_query = Action.objects.open().filter(pk=action.pk).exists()
        assert action.is_open == in_query == ((status, tier, review_state) in expected_open), (status, tier)


def test_an_item_escalated_by_hand_counts_as_escalated_in_the_stats_and_in_the_tab(
    agent_client, reviewer, senior_reviewer, ops_client
):
    action = d.async_review(agent_client)
    lifecycle.action_escalate(action=action, user=reviewer, note="not sure")
    stats = ops_client.get("/api/v1/ops/stats").json()
    assert stats["queue_depth"]["escalated"] == 1
    page = Client()
    page.force_login(senior_reviewer)
    html = page.get("/queue/escalated/").content.decode()
    assert f"/actions/{action.pk}/" in html


def test_a_blocking_action_is_painted_high_risk_on_the_queue_and_on_its_page(agent_client, reviewer):
    action = d.blocking(agent_client)
    Action.objects.filter(pk=action.pk).update(risk_score=0.67)
    page = Client()
    page.force_login(reviewer)
    row = page.get("/queue/blocking/").content.decode()
    assert '<span class="risk risk-high">0.67</span>' in row
    html = page.get(f"/actions/{action.pk}/").content.decode()
    assert 'class="risk risk-high"' in html and 'low="0.3399" high="0.6699"' in html


def test_override_rate_means_the_same_overall_and_per_agent_and_type(agent_client, reviewer, ops_client):
    blocked = d.blocking(agent_client)
    lifecycle.action_decide(action=blocked, user=reviewer, approve=True)  # too high
    reviewed = d.async_review(agent_client)
    lifecycle.action_review(action=reviewed, user=reviewer, flag=False)  # agreed
    stats = ops_client.get("/api/v1/ops/stats").json()
    rows = stats["overrides_by_agent_and_type"]
    decisions = sum(r["decisions"] for r in rows)
    overrides = sum(r["too_low"] + r["too_high"] for r in rows)
    assert (decisions, overrides) == (2, 1)
    assert stats["override_rate"] == pytest.approx(overrides / decisions)


def test_the_admin_creates_and_edits_agents_through_the_audited_service(db, admin_client, reviewer):
    admin_client.post(
        "/admin/reviewqueue/agent/add/",
        {
            "name": "ledger-bot",
            "description": "",
            "scopes": '["ledger.*"]',
            "rate_limit_per_minute": 120,
            "conversation_rate_limit_per_minute": 30,
            "is_active": "on",
            "keys-TOTAL_FORMS": 0,
            "keys-INITIAL_FORMS": 0,
        },
    )
    created = AuditEvent.objects.get(kind="agent.created")
    assert created.data["scopes"] == ["ledger.*"] and created.actor.startswith("user:")
    agent = created.agent
    response = admin_client.post(
        f"/admin/reviewqueue/agent/{agent.pk}/change/",
        {
            "name": "ledger-bot",
            "description": "",
            "scopes": '["ledger.*", "payments.*"]',
            "rate_limit_per_minute": 120,
            "conversation_rate_limit_per_minute": 30,
            "is_active": "on",
            "owners": [reviewer.pk],
            "keys-TOTAL_FORMS": 0,
            "keys-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    changed = AuditEvent.objects.get(kind="agent.changed")
    assert changed.data["changed"] == {"scopes": [["ledger.*"], ["ledger.*", "payments.*"]]}
    owners = AuditEvent.objects.get(kind="agent.owners_changed")
    assert owners.data == {"before": [], "after": [reviewer.pk]}
    assert list(agent.owners.all()) == [reviewer]
