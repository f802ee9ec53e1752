"""An action's page: context for the decision, masking and reveal, decisions through the forms."""

import json

import django.db
import pytest
from django.test.utils import CaptureQueriesContext

from reviewqueue.actions import lifecycle
from reviewqueue.models import Action, AuditEvent
from reviewqueue.privacy import masking as privacy
from tests import dashboard as d


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def test_the_page_says_why_the_action_is_here_and_shows_its_conversation_and_cost(rita, agent_client, reviewer):
    earlier = d.submit(agent_client, cost={"usd": 0.01, "input_tokens": 1000, "output_tokens": 100})
    action = d.blocking(agent_client, cost={"usd": 0.02, "input_tokens": 2000, "output_tokens": 200})
    html = rita.get(f"/actions/{action.pk}/").content.decode()
    assert action.summary in html and "billing-bot" in html and action.rationale in html
    for reason in action.risk_reasons:
        assert str(reason).replace("'", "&#x27;") in html
    assert earlier.summary in html and "$0.0300" in html and "3000 input / 300 output tokens" in html


def test_similar_actions_show_how_they_ended(rita, agent_client, senior_reviewer):
    before = d.blocking(agent_client, summary="the earlier refund")
    lifecycle.action_decide(action=before, user=senior_reviewer, approve=False, note="customer was refunded twice")
    action = d.blocking(agent_client)
    html = rita.get(f"/actions/{action.pk}/").content.decode()
    section = html.split('id="similar-title"')[1]
    assert "the earlier refund" in section and "rejected" in section and "customer was refunded twice" in section


def test_personal_data_is_masked_until_a_senior_reveals_it_and_every_reveal_is_audited(
    client, agent_client, reviewer, senior_reviewer
):
    payload = {
        "to": "jane.doe@example.org",
        "phone": "+1 415 555 2671",
        "iban": "DE89370400440532013000",
        "note": "card 4111 1111 1111 1111, ssn 123-45-6789",
        "amount": 1200,
    }
    action = d.blocking(agent_client, payload=payload)
    client.force_login(reviewer)
    html = client.get(f"/actions/{action.pk}/").content.decode()
    for secret in ("jane.doe", "555 2671", "DE89370400440532013000", "4111 1111 1111 1111", "123-45-6789"):
        assert secret not in html
    assert "j•••@example.org" in html and "•••3000" in html and "•••1111" in html
    assert client.post(f"/actions/{action.pk}/reveal").status_code == 403
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()
    client.force_login(senior_reviewer)
    revealed = client.post(f"/actions/{action.pk}/reveal", headers={"HX-Request": "true"}).content.decode()
    assert "jane.doe@example.org" in revealed and "recorded in the audit trail" in revealed
    event = AuditEvent.objects.get(kind="action.pii_revealed")
    assert event.actor == "user:sam" and event.action_id == action.pk and "$.to" in event.data["fields"]


def test_masked_values_survive_an_edit_and_forged_tokens_are_refused():
    payload = {"to": "jane@example.org", "body": "call +1 415 555 2671 today", "amount": 10}
    masked = privacy.payload_mask(payload)
    assert masked.count == 2 and masked.editable
    edited = {**masked.value, "amount": 12}
    assert privacy.payload_unmask(edited, original=payload) == {**payload, "amount": 12}
    with pytest.raises(Exception, match="does not exist"):
        privacy.payload_unmask({"to": "⟦email #9: x⟧"}, original=payload)
    assert not privacy.payload_mask({"x": "⟦personal #1⟧"}).editable


def test_the_detail_view_runs_a_bounded_number_of_queries(rita, agent_client, senior_reviewer):
    action = d.blocking(agent_client)
    rita.get(f"/actions/{action.pk}/")
    with CaptureQueriesContext(django.db.connection) as few:
        rita.get(f"/actions/{action.pk}/")
    for i in range(6):  # a longer conversation and more history must not add queries
        other = d.blocking(agent_client, summary=f"older {i}")
        lifecycle.action_decide(action=other, user=senior_reviewer, approve=True)
    with CaptureQueriesContext(django.db.connection) as many:
        rita.get(f"/actions/{action.pk}/")
    assert len(few) == len(many) <= 16, [q["sql"][:90] for q in many.captured_queries]


def test_approving_through_the_form_goes_on_to_the_next_item(rita, agent_client):
    action, following = d.blocking(agent_client), d.blocking(agent_client, summary="next one")
    response = rita.post(f"/actions/{action.pk}/decide", {"decision": "approve"})
    assert response.status_code == 302 and response.url == f"/actions/{following.pk}/"
    assert Action.objects.get(pk=action.pk).status == "approved"
    assert "You approved" in rita.get(response.url).content.decode()


def test_reject_without_a_reason_is_refused_on_the_page(rita, agent_client):
    action = d.blocking(agent_client)
    response = rita.post(f"/actions/{action.pk}/decide", {"decision": "reject", "note": " "})
    assert response.status_code == 422 and "A rejection needs a reason." in response.content.decode()
    assert Action.objects.get(pk=action.pk).status == "pending"


def test_an_invalid_edit_is_refused_and_kept_for_fixing(rita, agent_client):
    action = d.blocking(agent_client)
    response = rita.post(f"/actions/{action.pk}/decide", {"decision": "edit", "payload": '{"amount": '})
    assert response.status_code == 422 and "not valid JSON" in response.content.decode()
    assert "{&quot;amount&quot;: </textarea>" in response.content.decode()
    array = rita.post(f"/actions/{action.pk}/decide", {"decision": "edit", "payload": "[1, 2]"})
    assert array.status_code == 422 and "JSON object" in array.content.decode()
    assert Action.objects.get(pk=action.pk).status == "pending"


def test_the_edit_preview_validates_and_shows_the_diff(rita, agent_client):
    action = d.blocking(agent_client)
    edited = json.dumps({**action.payload, "amount": 99.5, "memo": "partial"})
    html = rita.post(f"/actions/{action.pk}/edit-preview", {"payload": edited}).content.decode()
    assert "$.amount" in html and "99.5" in html and "$.memo" in html and "diff-added" in html
    assert "not valid JSON" in rita.post(f"/actions/{action.pk}/edit-preview", {"payload": "{"}).content.decode()


def test_the_loser_of_a_race_sees_who_decided_and_how_not_an_error(rita, agent_client, senior_reviewer):
    action = d.blocking(agent_client)
    lifecycle.action_decide(action=action, user=senior_reviewer, approve=False, note="fraud pattern")
    response = rita.post(f"/actions/{action.pk}/decide", {"decision": "approve"}, follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Too late: Already decided: rejected by sam." in html
    outcome = html.split('id="outcome"')[1]
    assert "Rejected" in outcome and "sam" in outcome and "fraud pattern" in outcome


def test_the_first_four_eyes_approval_says_a_second_is_needed(rita, agent_client):
    action = d.four_eyes(agent_client)
    response = rita.post(f"/actions/{action.pk}/decide", {"decision": "approve"}, follow=True)
    assert "a second reviewer must approve" in response.content.decode()
    assert Action.objects.get(pk=action.pk).status == "pending"
    assert "1 of 2 so far" in response.content.decode()


def test_an_owner_sees_why_they_cannot_decide_and_no_decision_forms(rita, agent_client, reviewer):
    agent_client.agent.owners.add(reviewer)
    action = d.blocking(agent_client)
    html = rita.get(f"/actions/{action.pk}/").content.decode()
    assert "separation of duties" in html and 'id="approve-form"' not in html
    assert rita.post(f"/actions/{action.pk}/decide", {"decision": "approve"}).status_code == 403
    assert Action.objects.get(pk=action.pk).status == "pending"


def test_async_items_are_confirmed_or_flagged_from_the_page(rita, agent_client):
    action = d.async_review(agent_client)
    html = rita.get(f"/actions/{action.pk}/").content.decode()
    assert 'id="confirm-form"' in html and 'id="flag-form"' in html and 'id="approve-form"' not in html
    refused = rita.post(f"/actions/{action.pk}/decide", {"decision": "flag"})
    assert refused.status_code == 422 and "A flag needs a reason." in refused.content.decode()
    rita.post(f"/actions/{action.pk}/decide", {"decision": "flag", "note": "wrong contact"})
    assert Action.objects.get(pk=action.pk).review_state == "flagged"


def test_claiming_shows_others_who_holds_the_item(client, agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client)
    client.force_login(reviewer)
    mine = client.post(f"/actions/{action.pk}/claim", headers={"HX-Request": "true"}).content.decode()
    assert "You hold this item" in mine and 'hx-trigger="every 60s"' in mine
    client.force_login(senior_reviewer)
    theirs = client.post(f"/actions/{action.pk}/claim", headers={"HX-Request": "true"}).content.decode()
    assert "<strong>rita</strong> is working on this" in theirs
    assert "rita is on it" in client.get("/queue/blocking/").content.decode()
    taken = client.post(f"/actions/{action.pk}/claim", {"take_over": "1"}, headers={"HX-Request": "true"})
    assert "You hold this item" in taken.content.decode()
    released = client.post(f"/actions/{action.pk}/claim", {"release": "1"}, headers={"HX-Request": "true"})
    assert "Nobody holds this item" in released.content.decode() and "hx-trigger" not in released.content.decode()


def test_agent_text_is_escaped_everywhere_on_the_page(rita, agent_client):
    vector = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    action = d.blocking(agent_client, summary=vector, rationale=vector, payload={vector: vector, "amount": 2000})
    for html in (rita.get(f"/actions/{action.pk}/").content.decode(), rita.get("/queue/blocking/").content.decode()):
        assert "<script>alert(2)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_an_unknown_action_is_a_404_page(rita, db):
    assert rita.get("/actions/01a20ac0-8b00-70f4-b98a-ae81771b38a0/").status_code == 404


def test_a_senior_reviewer_is_not_offered_to_escalate_to_senior_reviewers(
    client, agent_client, reviewer, senior_reviewer
):
    action = d.blocking(agent_client)
    client.force_login(reviewer)
    assert 'id="escalate-button"' in client.get(f"/actions/{action.pk}/").content.decode()

    client.force_login(senior_reviewer)
    assert 'id="escalate-button"' not in client.get(f"/actions/{action.pk}/").content.decode()
    refused = client.post(f"/actions/{action.pk}/decide", {"decision": "escalate"})
    assert "one of the senior reviewers yourself" in refused.content.decode()
    assert Action.objects.get(pk=action.pk).escalated_to == ""
