"""Two people means two people: reviewers signed in through the login page of a
real server, posting the forms the action page serves (issue 11).

An approval counts only for the exact payload (SHA-256) it approved; an edit
is routed again and needs someone other than its editor when four eyes apply.
"""

import html
import json
import threading
from html.parser import HTMLParser

import httpx
import pytest
from django.db import connection

from reviewqueue.core.canonical import sha256_hex
from reviewqueue.models import AuditEvent, Decision
from tests import dashboard as d
from tests.conftest import _user, make_agent

pytestmark = pytest.mark.django_db(transaction=True)


class _Forms(HTMLParser):
    """Each form's fields as the browser would send them: hidden and text inputs and textareas."""

    def __init__(self):
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._form: dict[str, str] | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._form = self.forms.setdefault(attrs.get("id") or f"form-{len(self.forms)}", {})
        elif self._form is not None and tag == "input" and attrs.get("name"):
            self._form[attrs["name"]] = attrs.get("value") or ""
        elif self._form is not None and tag == "textarea" and attrs.get("name"):
            self._textarea = attrs["name"]
            self._form[self._textarea] = ""

    def handle_data(self, data):
        if self._textarea is not None:
            self._form[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None


class Reviewer:
    """A browser session of one reviewer on the live server."""

    def __init__(self, base_url: str, username: str):
        self.username = username
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=True)
        login = self._forms("/accounts/login/")
        form = next(f for f in login.values() if "username" in f)
        signed_in = self.http.post(
            "/accounts/login/", data={**form, "username": username, "password": f"pw-{username}"}
        )
        assert signed_in.status_code == 200 and "/accounts/login/" not in str(signed_in.url), signed_in.text[:300]

    def _forms(self, path: str) -> dict[str, dict[str, str]]:
        page = self.http.get(path)
        assert page.status_code == 200, page.status_code
        parser = _Forms()
        parser.feed(page.text)
        return parser.forms

    def open(self, action) -> dict[str, dict[str, str]]:
        """Open the action's page: its forms, as served."""
        return self._forms(f"/actions/{action.pk}")

    def page(self, action) -> str:
        return html.unescape(self.http.get(f"/actions/{action.pk}").text)

    def post(self, action, form: dict[str, str], **fields) -> httpx.Response:
        return self.http.post(f"/actions/{action.pk}/decide", data={**form, **fields})

    def approve(self, action, forms=None) -> httpx.Response:
        return self.post(action, (forms or self.open(action))["approve-form"])

    def edit(self, action, payload: dict, forms=None) -> httpx.Response:
        return self.post(action, (forms or self.open(action))["edit-form"], payload=json.dumps(payload))

    def close(self):
        self.http.close()


@pytest.fixture
def people(live_server):
    """Sign people in on demand; signs them all out at the end."""
    signed_in = []

    def sign_in(username, *groups):
        _user(username, "reviewer", *groups)
        signed_in.append(Reviewer(live_server.url, username))
        return signed_in[-1]

    yield sign_in
    for reviewer in signed_in:
        reviewer.close()


def _agent_view(agent_client, action) -> dict:
    return agent_client.get(f"/actions/{action.pk}").json()


def _text(response: httpx.Response) -> str:
    return html.unescape(response.text)


def test_the_second_approvers_edit_is_not_approved_by_its_editor_alone(people):
    """The attack: the first reviewer approves, the second edits and so approved
    a payload nobody else saw. Now the edit waits for another person."""
    agent = make_agent()
    rita, sam, vera = people("rita"), people("sam", "senior_reviewer"), people("vera")
    action = d.four_eyes(agent)
    edited = {**action.payload, "charge": "ch_attacker", "amount": 74000.0}

    first = rita.approve(action)
    assert first.status_code == 200 and _agent_view(agent, action)["status"] == "pending"

    by_sam = sam.edit(action, edited)
    assert by_sam.status_code == 200
    seen = _agent_view(agent, action)
    assert seen["status"] == "pending" and seen["may_execute"] is False
    assert "second reviewer must approve this exact payload" in _text(first)
    assert "another reviewer must approve this exact payload" in _text(by_sam)
    page = sam.page(action)
    assert "You approved this payload; another reviewer must approve it" in page
    assert "Edited by sam: needs another reviewer's approval" in page
    assert "(1 of 2 so far: sam)" in page

    again = sam.approve(action)  # the editor can't be the second pair of eyes on his own edit
    assert again.status_code == 422
    assert "You already approved this payload; a second, different reviewer must approve it" in _text(again)
    assert _agent_view(agent, action)["status"] == "pending"

    # Rita approved the agent's payload, not Sam's: she must approve the edit itself.
    assert "You approved this payload" not in rita.page(action)
    late = vera.open(action)
    decided = rita.approve(action)
    assert decided.status_code == 200 and "You approved" in _text(decided)
    seen = _agent_view(agent, action)
    assert seen["status"] == "approved" and seen["may_execute"] is True
    assert seen["approved_payload"] == edited and seen["approved_payload_sha256"] == sha256_hex(edited)
    event = AuditEvent.objects.get(action=action, kind="action.approved")
    assert event.data["approvers"] == ["sam", "rita"]
    approvals = Decision.objects.filter(action=action).order_by("created_at")
    assert [(a.user.username, a.payload_sha256) for a in approvals] == [
        ("rita", sha256_hex(action.payload)),
        ("sam", sha256_hex(edited)),
        ("rita", sha256_hex(edited)),
    ]
    assert "Too late: Already decided: approved by rita." in _text(vera.approve(action, forms=late))


def test_an_edit_that_raises_the_amount_is_routed_again_and_needs_a_second_person(people):
    """The attack: one reviewer edits 5,000 into 750,000 and approves it alone."""
    agent = make_agent()
    rita, sam = people("rita"), people("sam", "senior_reviewer")
    action = d.blocking(agent, tool="", payload={"charge": "ch_77", "amount": 5000.0, "currency": "USD"})
    assert not action.four_eyes
    edited = {**action.payload, "amount": 750000.0}

    response = rita.edit(action, edited)
    assert response.status_code == 200
    seen = _agent_view(agent, action)
    assert seen["status"] == "pending" and seen["may_execute"] is False
    assert "Your edit changed the risk (see the reasons): it now needs four eyes" in _text(response)
    action.refresh_from_db()
    assert action.four_eyes
    assert any(r.startswith("after an edit by rita: ") and "750" in r for r in action.risk_reasons), action.risk_reasons
    page = rita.page(action)
    assert "after an edit by rita: " in page and "Four eyes: needs two different reviewers" in page
    recorded = AuditEvent.objects.get(action=action, kind="action.first_approval")
    assert recorded.data["rerouted"]["four_eyes"] and recorded.data["rerouted"]["four_eyes_added"]
    assert recorded.data["rerouted"]["reasons"] and recorded.data["payload_sha256"] == sha256_hex(edited)
    assert rita.approve(action).status_code == 422

    assert sam.approve(action).status_code == 200
    seen = _agent_view(agent, action)
    assert seen["status"] == "approved" and seen["approved_payload"] == edited
    assert AuditEvent.objects.get(action=action, kind="action.approved").data["approvers"] == ["rita", "sam"]


def test_an_approval_from_a_page_opened_before_an_edit_does_not_count_for_the_edit(people):
    """Rita's page shows the agent's payload; Sam edits meanwhile. Rita's click
    approves what she saw, so it can't approve Sam's edit."""
    agent = make_agent()
    rita, sam = people("rita"), people("sam", "senior_reviewer")
    action = d.four_eyes(agent)
    stale = rita.open(action)
    edited = {**action.payload, "charge": "ch_elsewhere"}
    assert sam.edit(action, edited).status_code == 200

    refused = rita.approve(action, forms=stale)
    assert refused.status_code == 422
    assert "The payload changed since you opened this page: sam edited it. Your approval was not recorded" in (
        _text(refused)
    )
    assert Decision.objects.filter(action=action, user__username="rita").count() == 0
    assert _agent_view(agent, action)["status"] == "pending"

    assert rita.approve(action).status_code == 200  # the page she now sees shows the edit
    assert _agent_view(agent, action)["approved_payload"] == edited


def test_an_edit_of_an_action_without_four_eyes_that_stays_low_is_approved_by_its_editor(people):
    agent = make_agent()
    rita = people("rita")
    action = d.blocking(agent)
    edited = {**action.payload, "amount": 400.0}
    response = rita.edit(action, edited)
    assert response.status_code == 200 and "You edited and approved" in _text(response)
    seen = _agent_view(agent, action)
    assert seen["status"] == "approved" and seen["approved_payload"] == edited
    action.refresh_from_db()
    assert not action.four_eyes


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="real concurrent writers need PostgreSQL; CI runs it")
def test_reviewers_approving_and_editing_at_once_produce_one_outcome_seen_by_two(people):
    """After a first approval, three reviewers edit and three approve at the same
    moment, each from the page they opened: however the row lock orders them,
    the action ends approved once with a payload two people approved, or stays
    pending with the last edit approved by its editor alone."""
    agent = make_agent()
    action = d.four_eyes(agent)
    people("rita").approve(action)
    racers = [people(f"racer{i}") for i in range(6)]
    forms = [r.open(action) for r in racers]
    barrier = threading.Barrier(len(racers))
    responses = {}

    def decide(i):
        barrier.wait()
        if i % 2:
            responses[i] = racers[i].edit(action, {**action.payload, "amount": 60000.0 + i}, forms=forms[i])
        else:
            responses[i] = racers[i].approve(action, forms=forms[i])

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(responses) == list(range(len(racers)))
    assert all(r.status_code in (200, 422) for r in responses.values()), [r.status_code for r in responses.values()]
    action.refresh_from_db()
    approved_events = AuditEvent.objects.filter(action=action, kind="action.approved")
    by_hash: dict[str, set[str]] = {}
    for digest, who in Decision.objects.filter(action=action).values_list("payload_sha256", "user__username"):
        by_hash.setdefault(digest, set()).add(who)
    if action.status == "approved":
        assert approved_events.count() == 1
        assert action.approved_payload_sha256 == sha256_hex(action.approved_payload)
        assert len(by_hash[action.approved_payload_sha256]) == 2
        assert set(approved_events.get().data["approvers"]) == by_hash[action.approved_payload_sha256]
    else:
        assert action.status == "pending" and not approved_events.exists()
        assert all(len(who) == 1 for who in by_hash.values())  # no payload has two approvers
