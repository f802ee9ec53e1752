"""Personal data stays masked for those who may not reveal it (issue 11).

A plain reviewer drives the real server (live_server, httpx, signed in
through the login form) and tries each trick an attacker used: moving a
masked value under another key, using it as a key name, embedding it in
longer text, guessing it, reading the diffs of stored edits, the summary and
rationale on every page and fragment, the queue's text filter, and the
admin. The original values never appear in any answer, a senior's included,
until a senior's or an admin's reveal shows them, and every reveal is audited.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import httpx
import pytest
from django.contrib.auth.models import Permission

from reviewqueue.actions import lifecycle
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.models import Action, AuditEvent
from reviewqueue.privacy.masking import payload_mask, text_mask
from riskrouter.personal import PERSONAL_KEY, personal_spans
from tests import dashboard as d
from tests.conftest import _user

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "221B Baker Street, London"
PASSWORD = "hunter2-Zebra!"
EMAIL = "jane.doe@example.org"
CARD = 4111111111111111
PHONE = "+1 415 555 2671"
SSN = "123-45-6789"
PAYLOAD = {
    "ship_to": {"street_address": ADDRESS},
    "password": PASSWORD,
    "email": EMAIL,
    "card": CARD,
    "ref": CARD,
    "amount": 1200,
    "currency": "USD",
}
# Every spelling of each original a page could carry (JSON, HTML-escaped, grouped digits).
SECRETS = (
    ADDRESS,
    "Baker Street",
    PASSWORD,
    "hunter2",
    EMAIL,
    "jane.doe",
    str(CARD),
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    PHONE,
    "555 2671",
    "5552671",
    SSN,
)


def assert_masked(body: str, where: str = "") -> None:
    for text in {body, html.unescape(body), html.unescape(html.unescape(body))}:
        leaked = [secret for secret in SECRETS if secret in text or json.dumps(secret)[1:-1] in text]
        assert not leaked, f"{where}: {leaked} in {text[:3000]}"


class Browser:
    """A signed-in session against the live server, posting with its CSRF token like the page does."""

    def __init__(self, base_url: str, username: str):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        page = self.http.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        signed_in = self.http.post(
            "/accounts/login/",
            data={"username": username, "password": f"pw-{username}", "csrfmiddlewaretoken": token, "next": "/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, **headers) -> httpx.Response:
        headers = {"X-CSRFToken": self.http.cookies["csrftoken"], **headers}
        return self.http.post(path, data=data or {}, headers=headers)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def sign_in(live_server):
    opened: list[Browser] = []

    def open_as(user) -> Browser:
        opened.append(Browser(live_server.url, user.get_username()))
        return opened[-1]

    yield open_as
    for browser in opened:
        browser.close()


def masked_payload(page: str) -> dict:
    """The masked payload exactly as the edit form offers it."""
    text = re.search(r'<textarea name="payload" id="edit-payload"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    return json.loads(html.unescape(text))


def tokens(masked: dict) -> dict[str, str]:
    return {
        "address": masked["ship_to"]["street_address"],
        "password": masked["password"],
        "email": masked["email"],
        "card": masked["card"],
    }


def test_the_edit_preview_never_shows_a_masked_value_however_it_is_moved(sign_in, agent_client, reviewer):
    action = d.blocking(agent_client, payload=PAYLOAD)
    rita = sign_in(reviewer)
    page = rita.get(f"/actions/{action.pk}/")
    assert page.status_code == 200
    assert_masked(page.text, "action page")
    masked = masked_payload(page.text)
    tok = tokens(masked)
    tricks = {
        "under other keys": {
            **masked,
            "memo": tok["password"],
            "where": tok["address"],
            "n": tok["card"],
            "to": tok["email"],
        },
        "as key names": {**masked, tok["email"]: 1, tok["password"]: 2, tok["card"]: 3, tok["address"]: 4},
        "inside longer text": {
            **masked,
            "memo": f"pw {tok['password']} at {tok['address']} / {tok['card']}",
            f"k-{tok['password']}": f"x{tok['email']}y",
        },
        "nested and in lists": {**masked, "items": [{"v": tok["password"]}, [tok["card"], tok["address"]]]},
        "replacing the whole payload": {"a": tok["password"], "b": tok["address"], "c": tok["card"]},
        "a token with another hint": {**masked, "memo": re.sub(r":[^⟧]*⟧", ": shown?⟧", tok["password"])},
        "a forged number": {**masked, "memo": "⟦secret #99⟧"},
    }
    for name, edited in tricks.items():
        preview = rita.post(
            f"/actions/{action.pk}/edit-preview", {"payload": json.dumps(edited)}, **{"HX-Request": "true"}
        )
        assert preview.status_code == 200, (name, preview.text[:500])
        assert_masked(preview.text, name)
        assert "Changes" in preview.text or "edit-error" in preview.text, (name, preview.text[:500])
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()


def test_a_guess_of_a_masked_value_is_not_confirmed_by_the_preview(sign_in, agent_client, reviewer):
    action = d.blocking(agent_client, payload=PAYLOAD)
    rita = sign_in(reviewer)
    masked = masked_payload(rita.get(f"/actions/{action.pk}/").text)

    def preview(guess: str) -> str:
        body = rita.post(
            f"/actions/{action.pk}/edit-preview", {"payload": json.dumps({**masked, "password": guess})}
        ).text
        return body.replace(guess, "GUESS")

    right, wrong = preview(PASSWORD), preview("not-the-password")
    assert "$.password" in right and right == wrong


def test_edits_kept_on_the_server_are_shown_masked_to_every_plain_reviewer(
    sign_in, agent_client, reviewer, senior_reviewer
):
    other = _user("pete", "reviewer")
    action = d.blocking(agent_client, payload=PAYLOAD)
    rita = sign_in(reviewer)
    tok = tokens(masked_payload(rita.get(f"/actions/{action.pk}/").text))
    edited = {
        **PAYLOAD,
        "ship_to": {"street_address": tok["address"]},
        "password": tok["password"],
        "email": tok["email"],
        "card": tok["card"],
        "amount": 900,
        "memo": tok["password"],
        tok["email"]: tok["card"],
        tok["card"]: 1,
        "note": f"to {tok['address']}",
    }
    decided = rita.post(f"/actions/{action.pk}/decide", {"decision": "edit", "payload": json.dumps(edited)})
    assert decided.status_code in (200, 302, 422), decided.text[:500]
    assert_masked(decided.text, "decide answer")
    stored = Action.objects.get(pk=action.pk)
    kept = stored.approved_payload or stored.decisions.get().edited_payload
    assert kept["memo"] == PASSWORD and kept[EMAIL] == CARD and kept[str(CARD)] == 1  # the server keeps the originals
    for name, user in (("rita", reviewer), ("pete", other)):
        browser = rita if name == "rita" else sign_in(user)
        page = browser.get(f"/actions/{action.pk}/")
        assert page.status_code == 200
        assert "$.memo" in page.text and "$.amount" in page.text  # the diff is there, masked
        assert "<code>$.card</code>" not in page.text and "<code>$.ref</code>" not in page.text  # (unchanged)
        assert_masked(page.text, f"{name} after the edit")


def test_the_first_approvers_edit_is_shown_masked_to_the_second(sign_in, agent_client, reviewer, senior_reviewer):
    other = _user("pete", "reviewer")
    action = d.four_eyes(agent_client, payload={**PAYLOAD, "amount": 75000.0})
    masked = masked_payload(sign_in(other).get(f"/actions/{action.pk}/").text)
    tok = tokens(masked)
    lifecycle.action_decide(  # the first approver moved the values (through the form, as above)
        action=action,
        user=senior_reviewer,
        approve=True,
        edited_payload={**PAYLOAD, "amount": 75000.0, "memo": PASSWORD, ADDRESS: CARD, "to": f"<{EMAIL}>"},
    )
    rita = sign_in(reviewer)
    page = rita.get(f"/actions/{action.pk}/")
    assert page.status_code == 200 and "$.memo" in page.text
    assert tok["password"].split(":")[0] in page.text  # the moved value shows as its own token
    assert_masked(page.text, "second approver's page")
    # No hash of a payload either: it would let her test guesses of the masked values offline.
    edited = Action.objects.get(pk=action.pk).decisions.get().edited_payload
    assert sha256_hex(edited) not in page.text and sha256_hex(action.payload) not in page.text
    seal = re.search(r'name="payload_seal" value="([0-9a-f]+)"', page.text).group(1)
    approved = rita.post(f"/actions/{action.pk}/decide", {"decision": "approve", "payload_seal": seal})
    assert approved.status_code == 302, approved.text[:500]  # the page's seal names the edit she saw
    assert Action.objects.get(pk=action.pk).approved_payload == edited


SUMMARY = f"Refund {EMAIL}: card 4111 1111 1111 1111, call {PHONE}"
RATIONALE = f"Verified SSN {SSN}; password={PASSWORD}"


def test_personal_data_in_summaries_and_rationales_is_masked_on_every_page_and_fragment(
    sign_in, agent_client, reviewer, senior_reviewer
):
    first = d.blocking(agent_client, summary=SUMMARY, rationale=RATIONALE, payload=PAYLOAD, conversation_id="c-1")
    decided = d.blocking(agent_client, summary=SUMMARY, rationale=RATIONALE, payload=PAYLOAD, conversation_id="c-1")
    lifecycle.action_decide(action=decided, user=senior_reviewer, approve=False, note=f"wrong card {CARD}")
    current = d.blocking(agent_client, summary="Refund the duplicate charge", payload=PAYLOAD, conversation_id="c-1")
    to_approve = {name: d.blocking(agent_client, summary=SUMMARY, payload=PAYLOAD) for name in ("rita", "sam")}
    for user in (reviewer, senior_reviewer):  # a senior too: text is in the clear only after a reveal
        who = sign_in(user)
        pages = {
            "queue": who.get("/queue/blocking/"),
            "queue rows (htmx)": who.get("/queue/blocking/", headers={"HX-Request": "true"}),
            "decided tab": who.get("/queue/decided/"),
            "action page": who.get(f"/actions/{first.pk}/"),
            "conversation and similar": who.get(f"/actions/{current.pk}/"),
            "decided action": who.get(f"/actions/{decided.pk}/"),
        }
        for where, response in pages.items():
            assert response.status_code == 200, (user, where)
            assert_masked(response.text, f"{user}: {where}")
        assert "j•••@example.org" in pages["queue"].text and "•••1111" in pages["action page"].text
        assert str(first.pk) in pages["queue"].text and str(decided.pk) in pages["decided tab"].text
        approved = who.post(f"/actions/{to_approve[str(user)].pk}/decide", {"decision": "approve"})
        assert approved.status_code == 302
        after = who.get(approved.headers["location"])
        assert "You approved" in after.text
        assert_masked(after.text, f"{user}: the success message")
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()


def test_the_queue_filter_cannot_find_masked_text(sign_in, agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client, summary=SUMMARY)
    rita = sign_in(reviewer)
    for probe in ("jane.doe", "4111 1111", "555 2671"):
        rows = rita.get(f"/queue/blocking/?q={quote(probe)}").text
        assert str(action.pk) not in rows, probe
    assert str(action.pk) in rita.get(f"/queue/blocking/?q={quote('Refund')}").text
    assert str(action.pk) in rita.get(f"/queue/blocking/?q={quote('@example.org')}").text  # the hint shows it
    sam = sign_in(senior_reviewer)  # a senior reads the summary masked too: no probe of it either
    for probe in ("jane.doe", "4111 1111", "555 2671"):
        assert str(action.pk) not in sam.get(f"/queue/blocking/?q={quote(probe)}").text, probe
        assert (
            str(action.pk) not in sam.get(f"/queue/blocking/?q={quote(probe)}", headers={"HX-Request": "true"}).text
        ), probe
    assert str(action.pk) in sam.get(f"/queue/blocking/?q={quote('@example.org')}").text


def test_only_a_senior_reveals_and_the_reveal_is_audited(sign_in, agent_client, reviewer, senior_reviewer):
    action = d.blocking(agent_client, payload=PAYLOAD, summary=SUMMARY)
    rita = sign_in(reviewer)
    refused = rita.post(f"/actions/{action.pk}/reveal")
    assert refused.status_code == 403
    assert_masked(refused.text, "refused reveal")
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()
    sam = sign_in(senior_reviewer)
    page = sam.get(f"/actions/{action.pk}/")
    assert_masked(page.text.split('id="payload-title"')[1].split('id="conv-title"')[0], "senior's payload")
    revealed = sam.post(f"/actions/{action.pk}/reveal", **{"HX-Request": "true"})
    assert revealed.status_code == 200 and PASSWORD in html.unescape(revealed.text)
    event = AuditEvent.objects.get(kind="action.pii_revealed")
    assert event.actor == "user:sam" and event.action_id == action.pk and "$.password" in event.data["fields"]


def _between(page: str, start: str, end: str) -> str:
    return page.split(start, 1)[1].split(end, 1)[0]


def test_a_senior_sees_the_summary_and_rationale_masked_until_an_audited_reveal(sign_in, agent_client, senior_reviewer):
    action = d.blocking(agent_client, payload={"amount": 1200, "currency": "USD"}, summary=SUMMARY, rationale=RATIONALE)
    sam = sign_in(senior_reviewer)
    page = sam.get(f"/actions/{action.pk}/")
    assert page.status_code == 200
    assert_masked(page.text, "senior's action page before the reveal")
    assert "j•••@example.org" in _between(page.text, 'id="action-title"', "</h1>")
    assert "Reveal (audited)" in page.text  # the payload holds nothing personal; the summary does
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()

    # htmx: the payload, and the title and rationale out of band, in the clear.
    answer = html.unescape(sam.post(f"/actions/{action.pk}/reveal", **{"HX-Request": "true"}).text)
    title = _between(answer, 'id="action-title"', "</h1>")
    rationale = _between(answer, 'id="rationale"', "</blockquote>")
    assert 'hx-swap-oob="true"' in title and SUMMARY in title
    assert 'hx-swap-oob="true"' in rationale and SSN in rationale and PASSWORD in rationale
    event = AuditEvent.objects.get(kind="action.pii_revealed")
    assert event.actor == "user:sam" and event.action_id == action.pk and event.data["via"] == "dashboard"
    assert {"summary", "rationale"} <= set(event.data["fields"])

    # Without htmx: the whole page, the action's text in the clear; audited again.
    revealed = sam.post(f"/actions/{action.pk}/reveal")
    assert revealed.status_code == 200
    text = html.unescape(revealed.text)
    assert SUMMARY in _between(text, 'id="action-title"', "</h1>")
    assert SSN in _between(text, 'id="rationale"', "</blockquote>")
    assert "recorded in the audit trail" in text
    assert AuditEvent.objects.filter(kind="action.pii_revealed", action=action).count() == 2
    # The reveal is of that page only: a fresh load and the queue show the text masked again.
    assert_masked(sam.get(f"/actions/{action.pk}/").text, "senior's action page after the reveal")
    assert_masked(sam.get("/queue/blocking/").text, "senior's queue after the reveal")


# ------------------------------------------------------------------ admin ---


def _staff(username: str, *groups: str):
    user = _user(username, *groups, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_action", "view_auditevent"]))
    return user


def test_the_admin_shows_actions_masked_and_reveals_them_only_audited(sign_in, agent_client, senior_reviewer):
    action = d.blocking(
        agent_client,
        payload=PAYLOAD,
        summary=SUMMARY,
        rationale=RATIONALE,
        context={"user_message": f"my card is {CARD}, mail {EMAIL}"},
    )
    lifecycle.action_decide(
        action=action,
        user=senior_reviewer,
        approve=True,
        note="ok",
        edited_payload={**PAYLOAD, "amount": 900, "memo": PASSWORD},
    )
    clerk = sign_in(_staff("carl"))
    change, reveal = (f"/admin/reviewqueue/action/{action.pk}/{end}/" for end in ("change", "reveal"))
    page = clerk.get(change)
    assert page.status_code == 200 and "j•••@example.org" in page.text
    assert_masked(page.text, "admin change page")
    listing = clerk.get("/admin/reviewqueue/action/")
    assert listing.status_code == 200 and str(action.pk) in listing.text
    assert_masked(listing.text, "admin list")
    for probe in (
        "?q=jane.doe",
        "?summary__icontains=jane",
        "?payload__icontains=hunter2",
        "?rationale__contains=123-45",
        "?context__icontains=4111",
    ):
        found = clerk.get(f"/admin/reviewqueue/action/{probe}")  # (the page may echo the probe itself)
        assert found.status_code in (200, 400) and str(action.pk) not in found.text, probe  # no search oracle
    assert "Reveal" not in page.text
    assert clerk.post(reveal).status_code == 403
    assert not AuditEvent.objects.filter(kind="action.pii_revealed").exists()

    admin = sign_in(_staff("ada", "admin"))
    page = admin.get(change)
    assert_masked(page.text, "admin's change page before the reveal")
    assert "Reveal (audited)" in page.text
    assert f'action="{reveal}"' in page.text
    for probe in ("?q=jane.doe", "?q=4111", "?summary__icontains=jane"):  # no oracle for who may reveal either
        found = admin.get(f"/admin/reviewqueue/action/{probe}")
        assert found.status_code in (200, 400) and str(action.pk) not in found.text, probe
    assert_masked(admin.get("/admin/reviewqueue/action/").text, "admin's list")
    revealed = admin.post(reveal)
    assert revealed.status_code == 200
    text = html.unescape(revealed.text)
    assert PASSWORD in text and EMAIL in text and ADDRESS in text and str(CARD) in text and SSN in text
    event = AuditEvent.objects.get(kind="action.pii_revealed")
    assert event.actor == "user:ada" and event.action_id == action.pk and "$.password" in event.data["fields"]
    assert {"summary", "rationale"} <= set(event.data["fields"]) and event.data["via"] == "admin"


def test_group_notifications_and_the_admins_outbox_and_audit_pages_stay_masked(sign_in, agent_client, reviewer):
    from django.contrib.auth.models import Group
    from django.core import mail

    from reviewqueue.actions.kill_switches import kill_switch_set
    from reviewqueue.models import NotificationChannel, OutboxMessage
    from reviewqueue.notify import outbox as notifications

    NotificationChannel.objects.create(
        name="seniors",
        group=Group.objects.get_or_create(name="senior_reviewer")[0],
        kind="email",
        target="seniors@acme.example",
        events=["action.*"],
    )
    escalated = d.blocking(agent_client, payload=PAYLOAD, summary=SUMMARY)
    rejected = d.blocking(agent_client, payload=PAYLOAD, summary=SUMMARY)
    rita = sign_in(reviewer)
    assert rita.post(f"/actions/{escalated.pk}/decide", {"decision": "escalate"}).status_code == 302
    assert rita.post(f"/actions/{rejected.pk}/decide", {"decision": "reject", "note": "no"}).status_code == 302
    for message in OutboxMessage.objects.filter(kind="email"):
        notifications.deliver(message.pk)
    assert mail.outbox, "the group got no mail"
    for sent in mail.outbox:
        assert_masked(f"{sent.subject}\n{sent.body}", "group mail")
    webhook = OutboxMessage.objects.get(kind="agent_webhook", action=rejected)
    assert webhook.body["payload"]["password"] == PASSWORD  # the agent gets its own payload

    kill_switch_set(scope="action_type:payments.*", engaged=True, reason="drill", actor="test")
    assert agent_client.submit(summary=SUMMARY).status_code == 423
    refusal = AuditEvent.objects.get(kind="action.refused_kill_switch")
    assert SUMMARY in json.dumps(refusal.data, ensure_ascii=False)  # the trail keeps what was refused

    clerk = sign_in(_staff("carl"))
    clerk_user = type(reviewer).objects.get(username="carl")
    clerk_user.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    pages = {
        "outbox message": f"/admin/reviewqueue/outboxmessage/{webhook.pk}/change/",
        "outbox list": "/admin/reviewqueue/outboxmessage/",
        "audit event": f"/admin/reviewqueue/auditevent/{refusal.pk}/change/",
        "audit list": "/admin/reviewqueue/auditevent/",
    }
    for where, path_ in pages.items():
        page = clerk.get(path_)
        assert page.status_code == 200, where
        assert_masked(page.text, where)
    for probe in ("outboxmessage/?body__icontains=hunter2", "auditevent/?data__icontains=jane"):
        found = clerk.get(f"/admin/reviewqueue/{probe}")
        assert found.status_code == 400 or str(webhook.pk) not in found.text, probe


DETECTABLE = (
    f"Refund {EMAIL}, card 4111 1111 1111 1111, IBAN DE89370400440532013000, SSN {SSN}, call {PHONE}, "
    f"password={PASSWORD}; Amazon order 113-8823341-0091827 on 2024-06-11 for 42 USD"
)


def test_text_is_masked_exactly_where_the_routers_detectors_find_personal_data():
    """Masking has no detectors of its own: what riskrouter.personal finds is hidden, the rest kept as written."""
    spans = personal_spans(DETECTABLE)
    assert [kind for kind, _, _ in spans] == ["email", "card", "iban", "ssn", "phone", "secret"]
    pieces = re.split(r"⟦([a-z_]+): [^⟦⟧]*⟧", text_mask(DETECTABLE))
    bounds = [0, *(at for _, start, end in spans for at in (start, end)), len(DETECTABLE)]
    assert pieces[1::2] == [kind for kind, _, _ in spans]
    assert pieces[0::2] == [DETECTABLE[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    assert "113-8823341-0091827 on 2024-06-11 for 42 USD" in pieces[-1]  # look-alikes stay readable


def test_a_payload_is_masked_where_the_routers_detectors_or_its_personal_key_names_say():
    payload = {
        "customer_email": "ask at the desk",
        "shipping_zip": "94107",
        "card_cvc": 123,
        "mobile_phone": "n/a",
        "zipper": "94107-x",
        "tokenizer": "bpe",
        "note": DETECTABLE,
    }
    masked = payload_mask(payload)
    expected = []
    for key, value in payload.items():
        expected += [value] if PERSONAL_KEY.search(key) else [value[s:e] for _, s, e in personal_spans(value)]
    assert masked.originals == expected
    assert [
        masked.value[key].split(" #")[0] for key in ("customer_email", "shipping_zip", "card_cvc", "mobile_phone")
    ] == ["⟦email", "⟦address", "⟦card", "⟦phone"]  # the kind the key names (KEY_KINDS)
    assert (masked.value["zipper"], masked.value["tokenizer"]) == ("94107-x", "bpe")
