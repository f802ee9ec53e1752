"""The reviewer's flows in a real browser (headless chromium)."""

import json
import re
import threading
import time
import urllib.request

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from reviewqueue.core.canonical import sha256_hex
from reviewqueue.models import Action, Decision
from tests import dashboard as d

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_through_the_login_form_and_lands_on_the_queue(browser, live_server, reviewer):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.goto("/queue/blocking/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/queue/blocking/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("didn't match")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("pw-rita")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/queue/blocking/")
    expect(page.get_by_role("navigation", name="Queues")).to_contain_text("Blocking")
    context.close()


def test_a_new_blocking_action_appears_without_a_reload(signed_in, reviewer, agent_client):
    page = signed_in(reviewer)
    page.goto("/queue/blocking/")
    expect(page.get_by_text("Nothing here")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    action = d.blocking(agent_client, summary="Wire 9,900 EUR to a brand-new supplier")
    row = page.locator(f"tr[data-id='{action.pk}']")
    expect(row).to_be_visible(timeout=8_000)
    expect(row).to_contain_text("Wire 9,900 EUR")
    expect(page.locator("#count-blocking")).to_have_text("1")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    expect(row.locator("time[data-countdown]")).to_contain_text("left")  # the live SLA countdown


def test_it_approves_with_the_keyboard_and_the_agents_wait_returns_at_once(
    signed_in, reviewer, agent_client, live_server
):
    action = d.blocking(agent_client)
    page = signed_in(reviewer)
    page.goto("/queue/blocking/")
    expect(page.locator("tr[data-row].selected")).to_have_attribute("data-id", str(action.pk))
    page.keyboard.press("?")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")  # opens the selected item
    expect(page.get_by_role("heading", level=1)).to_have_text(action.summary)
    # A key typed into a text field never decides anything.
    page.get_by_label("Note (optional)").first.press_sequentially("a r e")
    page.keyboard.press("Escape")
    assert Action.objects.get(pk=action.pk).status == "pending"

    answer = {}

    def wait_as_agent():
        request = urllib.request.Request(
            f"{live_server.url}/api/v1/actions/{action.pk}/wait?timeout=30",
            headers={"Authorization": f"Bearer {agent_client.key}"},
        )
        with urllib.request.urlopen(request, timeout=40) as response:
            answer["body"] = json.loads(response.read())
            answer["at"] = time.time()

    waiter = threading.Thread(target=wait_as_agent)
    waiter.start()
    time.sleep(0.3)  # let the long-poll park on the server; it is the agent's side, not a wait on the page
    # The click's moment is when the browser gets the key (same wall clock as
    # this process); it survives the page's navigation in sessionStorage.
    page.evaluate("""document.addEventListener('keydown', e => {
        if (e.key === 'a') sessionStorage.setItem('pressedAt', String(Date.now()));
    }, true)""")
    page.keyboard.press("a")
    waiter.join(timeout=10)
    assert answer["body"]["status"] == "approved" and answer["body"]["may_execute"] is True
    expect(page.get_by_role("status").first).to_contain_text("You approved")
    pressed = int(page.evaluate("sessionStorage.getItem('pressedAt')")) / 1000
    # Woken by the decision, not by its timeout or a slow poll. The 200 ms
    # target is measured by bench/release_bench.py (timing belongs in bench/).
    assert answer["at"] - pressed < 1.0, f"the agent heard {answer['at'] - pressed:.3f} s after the key press"
    decision = Decision.objects.get(action=action)
    assert decision.kind == "approve" and decision.user == reviewer


def test_a_rejection_without_a_reason_is_refused(signed_in, reviewer, agent_client):
    action = d.blocking(agent_client)
    page = signed_in(reviewer)
    page.goto(f"/actions/{action.pk}/")
    page.keyboard.press("r")
    expect(page.get_by_label("Reason for rejecting (required)")).to_be_focused()
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("alert")).to_have_text("A rejection needs a reason.")
    assert Action.objects.get(pk=action.pk).status == "pending"
    page.get_by_label("Reason for rejecting (required)").fill("Duplicate of yesterday's refund")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status").first).to_contain_text("You rejected")
    action.refresh_from_db()
    assert action.status == "rejected" and action.decision_note == "Duplicate of yesterday's refund"


def test_edit_and_approve_changes_the_approved_payload(signed_in, reviewer, agent_client):
    payload = {"to": "jane.doe@example.org", "amount": 420.0, "currency": "USD", "memo": "refund"}
    action = d.blocking(agent_client, payload=payload)
    page = signed_in(reviewer)
    page.goto(f"/actions/{action.pk}/")
    expect(page.locator("#payload-json")).not_to_contain_text("jane.doe")  # masked
    page.keyboard.press("e")
    editor = page.get_by_label("Payload (JSON", exact=False)
    expect(editor).to_be_focused()
    edited = json.loads(editor.input_value())
    edited["amount"] = 400.0
    editor.fill("{ not json")
    expect(page.locator("#edit-error")).to_contain_text("not valid JSON")
    editor.fill(json.dumps(edited, indent=2, ensure_ascii=False))
    expect(page.locator("#edit-preview")).to_contain_text("$.amount")
    expect(page.locator("#edit-preview")).to_contain_text("400")
    page.get_by_role("button", name="Approve the edited payload").click()
    expect(page.get_by_role("status").first).to_contain_text("You edited and approved")
    action.refresh_from_db()
    assert action.status == "approved"
    assert action.approved_payload == {**payload, "amount": 400.0}  # the masked email came back intact
    assert action.approved_payload_sha256 == sha256_hex(action.approved_payload)


def test_two_browsers_race_and_exactly_one_decision_counts(signed_in, reviewer, senior_reviewer, agent_client):
    action = d.blocking(agent_client)
    rita, sam = signed_in(reviewer), signed_in(senior_reviewer)
    rita.goto(f"/actions/{action.pk}/")
    expect(rita.locator("#claim")).to_contain_text("You hold this item")
    sam.goto(f"/actions/{action.pk}/")
    expect(sam.locator("#claim-holder")).to_contain_text("rita is working on this")  # the lease shows
    sam.get_by_label("Reason for rejecting (required)").fill("Customer already refunded")
    # Fire both submissions before waiting on either.
    rita.evaluate("document.getElementById('approve-form').requestSubmit()")
    sam.evaluate("document.getElementById('reject-form').requestSubmit()")
    for page in (rita, sam):
        expect(page.locator(".messages")).to_be_visible()
    action.refresh_from_db()
    finals = Decision.objects.filter(action=action, kind__in=["approve", "reject"])
    assert finals.count() == 1
    winner = finals.get()
    loser_page = sam if winner.user == reviewer else rita
    expect(loser_page.locator(".messages")).to_contain_text("Too late")
    expect(loser_page.locator(".messages")).to_contain_text(f"by {winner.user.username}")
    expect(loser_page.locator("#outcome")).to_contain_text(winner.user.username)
    assert action.status == ("approved" if winner.kind == "approve" else "rejected")


INJECTED = (
    "main script, main img, main svg, main iframe, main object, main embed, main video, main audio, "
    "main marquee, main style, main link, main meta, main base, main input[autofocus], main [hx-trigger='load'], "
    "main a[href^='javascript'], main [onerror], main [onload], main #hxon, main b, main math, main template"
)


def _assert_inert(page, sample: str):
    assert page.evaluate("window.__xss") is None, "an injected script ran"
    assert page.dialogs == [], f"an injected script opened a dialog: {page.dialogs}"
    assert page.evaluate("window.__cspViolations") == [], "markup was injected and the CSP had to block it"
    assert page.locator(INJECTED).count() == 0, "agent markup rendered as elements"
    expect(page.locator("main")).to_contain_text(sample)  # shown, as text


def test_the_xss_corpus_stays_inert_in_summaries_rationale_and_payload(
    signed_in, reviewer, senior_reviewer, agent_client
):
    from tests.e2e.xss_corpus import VECTORS

    assert len(VECTORS) >= 30
    actions = []
    for start in range(0, len(VECTORS), 8):
        chunk = VECTORS[start : start + 8]
        actions.append(
            d.blocking(
                agent_client,
                summary=" | ".join(chunk),
                rationale="\n".join(VECTORS),
                payload={
                    **{vector: vector for vector in VECTORS},
                    "amount": 1500,
                    "nested": {"list": VECTORS[:5]},
                    "contact": "jane.doe@example.org",
                },
                conversation_id="conv-xss",
            )
        )
    page = signed_in(senior_reviewer)
    page.goto("/queue/blocking/")
    expect(page.locator("tr[data-row]")).to_have_count(len(actions))
    _assert_inert(page, VECTORS[0])
    for action in actions:
        page.goto(f"/actions/{action.pk}/")
        expect(page.locator("#rationale")).to_contain_text(VECTORS[2])
        expect(page.locator("#payload-json")).to_contain_text(VECTORS[4])
        # Our own claim box fires hx-trigger="load"; let it settle so only agent markup could match.
        expect(page.locator("#claim")).to_contain_text("You hold this item")
        _assert_inert(page, action.summary.split(" | ")[0])
    # Reveal (htmx swap) and the edit preview (htmx swap) render agent text too.
    page.get_by_role("button", name="Reveal (audited)").click()
    expect(page.locator("#payload-json")).to_contain_text("jane.doe@example.org")
    _assert_inert(page, VECTORS[0])
    page.keyboard.press("e")
    page.get_by_label("Payload (JSON", exact=False).fill(
        '{"<img src=x onerror=window.__xss=1>": "<script>window.__xss=1</script>"}'
    )
    expect(page.locator("#edit-preview")).to_contain_text("<script>window.__xss=1</script>")
    _assert_inert(page, VECTORS[0])
    # And once decided, on the Decided tab.
    page.get_by_label("Reason for rejecting (required)").fill(VECTORS[2])
    page.get_by_role("button", name="Reject").click()
    page.goto("/queue/decided/")
    expect(page.locator("tr[data-row]")).to_have_count(1)
    _assert_inert(page, VECTORS[-8])


def test_pages_fit_desktop_and_tablet_widths_and_screenshots_are_taken(signed_in, reviewer, agent_client, tmp_path):
    """The README's screenshots come from here (REVIEWQUEUE_SCREENSHOTS=docs/screenshots)."""
    import os
    from pathlib import Path

    out = Path(os.environ.get("REVIEWQUEUE_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    from tests.dashboard import golden

    first = None
    for action_type in ["payments.transfer", "GmailSendEmail", "run_shell_command", "files.delete", "execute_sql"]:
        action = d.submit(
            agent_client,
            **{
                **golden(action_type),
                "conversation_id": "conv-demo",
                "cost": {"usd": 0.0123, "input_tokens": 2100, "output_tokens": 300},
            },
        )
        first = first or action
    d.async_review(agent_client)
    for width, height, name in [(1280, 860, "desktop"), (820, 1180, "tablet")]:
        page = signed_in(reviewer, width=width, height=height)
        page.goto("/queue/blocking/")
        expect(page.locator("tr[data-row]").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the queue scrolls sideways"
        if name == "desktop":
            page.screenshot(path=str(out / "queue.png"))
        page.goto(f"/actions/{first.pk}/")
        expect(page.get_by_role("complementary", name="Decision")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            "the action page scrolls sideways"
        )
        page.screenshot(
            path=str(out / ("action.png" if name == "desktop" else "action-tablet.png")), full_page=name == "desktop"
        )
        # Every form control has a label.
        unlabeled = page.evaluate("""[...document.querySelectorAll('main input:not([type=hidden]), main textarea, main select')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name)""")
        assert unlabeled == []


def test_the_sla_countdown_says_minutes_left_and_turns_urgent_as_it_runs_out(signed_in, reviewer, agent_client):
    action = d.blocking(agent_client)
    page = signed_in(reviewer)
    page.clock.install()  # the page's own clock, so the test can move it
    page.goto("/queue/blocking/")
    countdown = page.locator(f"tr[data-id='{action.pk}'] time[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^\d+ min left$"))
    expect(countdown).not_to_have_class(re.compile("sla-soon"))

    left = (action.sla_due_at - timezone.now()).total_seconds()
    page.clock.run_for(int((left - 200) * 1000))  # 200 s before the deadline
    expect(countdown).to_have_text(re.compile(r"^3 min left$"))
    expect(countdown).to_have_class(re.compile("sla-soon"))

    page.clock.run_for(260_000)
    expect(countdown).to_have_text(re.compile(r"^overdue 1 min$"))
    expect(countdown).to_have_class(re.compile("sla-overdue"))


def test_the_kill_switch_banner_offers_ops_a_button_to_manage_it(signed_in, ops_user):
    from reviewqueue.actions.kill_switches import kill_switch_set

    kill_switch_set(scope="global", engaged=True, reason="incident 42", actor="ops")
    page = signed_in(ops_user)
    page.goto("/ops/kill-switches/")
    manage = page.get_by_role("link", name="Manage kill switches")
    expect(manage).to_be_visible()
    style = manage.evaluate(
        "e => { const s = getComputedStyle(e); return [s.backgroundColor, s.color, s.fontWeight]; }"
    )
    assert style[0] != "rgba(0, 0, 0, 0)" and style[0] != style[1] and int(style[2]) >= 600  # a filled, bold button
    manage.click()
    expect(page).to_have_url(re.compile(r"/ops/kill-switches/$"))


def test_the_payload_editor_gets_room_to_edit(signed_in, reviewer, agent_client):
    action = d.blocking(agent_client)
    page = signed_in(reviewer)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(f"/actions/{action.pk}/")
    page.locator("#edit-panel summary").click()
    editor = page.locator("#edit-payload")
    expect(editor).to_be_visible()
    assert editor.bounding_box()["width"] >= 500  # was 270 px in a 340 px column
