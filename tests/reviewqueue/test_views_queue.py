"""The queue pages: sign-in, roles, tabs, filters, keyset pages, counts, headers."""

import re

import pytest
from django.test import Client

from reviewqueue.actions import lifecycle
from reviewqueue.models import Action
from tests import dashboard as d


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def ids(response):
    return re.findall(r'data-id="([0-9a-f-]{36})"', response.content.decode())


@pytest.mark.parametrize(
    "path", ["/", "/queue/blocking/", "/nav/", "/ops/kill-switches/", "/actions/01a20ac0-8b00-70f4-b98a-ae81771b38a0/"]
)
def test_every_page_sends_a_signed_out_visitor_to_the_login_form(client, db, path):
    response = client.get(path)
    assert response.status_code == 302 and response.url.startswith(f"/accounts/login/?next={path}")


def test_the_login_form_signs_in_and_lands_on_the_blocking_queue(client, reviewer):
    page = client.get("/accounts/login/")
    assert b'<label for="id_username">Username</label>' in page.content
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-rita"})
    assert response.status_code == 302 and response.url == "/"
    assert client.get("/", follow=True).redirect_chain[-1][0] == "/queue/blocking/"


def test_roles_decide_where_a_user_may_go(client, outsider, ops_user, reviewer):
    client.force_login(outsider)
    assert client.get("/").status_code == 403
    assert client.get("/queue/blocking/").status_code == 403
    client.force_login(ops_user)
    assert client.get("/").url == "/ops/kill-switches/"
    assert client.get("/queue/blocking/").status_code == 403
    client.force_login(reviewer)
    assert client.get("/ops/kill-switches/").status_code == 403


def test_superusers_count_as_every_role(client, django_user_model, agent_client):
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    client.force_login(boss)
    action = d.blocking(agent_client)
    assert str(action.pk) in ids(client.get("/queue/blocking/"))
    assert client.get("/ops/kill-switches/").status_code == 200


def test_blocking_lists_pending_items_most_urgent_sla_first(rita, agent_client, reviewer):
    first, second, third = (d.blocking(agent_client, summary=f"item {i}") for i in range(3))
    Action.objects.filter(pk=third.pk).update(sla_due_at=first.sla_due_at.replace(year=2020))
    lifecycle.action_decide(action=second, user=reviewer, approve=True)
    response = rita.get("/queue/blocking/")
    assert ids(response) == [str(third.pk), str(first.pk)]
    assert "data-countdown" in response.content.decode()


def test_tabs_hold_async_escalated_and_decided_items(client, agent_client, reviewer, senior_reviewer):
    blocking, review = d.blocking(agent_client), d.async_review(agent_client)
    escalated = d.blocking(agent_client, summary="too big for me")
    lifecycle.action_escalate(action=escalated, user=reviewer)
    lifecycle.action_decide(action=blocking, user=reviewer, approve=False, note="duplicate")
    client.force_login(reviewer)
    assert ids(client.get("/queue/async/")) == [str(review.pk)]
    assert ids(client.get("/queue/escalated/")) == []
    assert str(escalated.pk) not in ids(client.get("/queue/blocking/"))  # a senior's now
    decided = client.get("/queue/decided/")
    assert ids(decided) == [str(blocking.pk)] and "Reject" in decided.content.decode()
    client.force_login(senior_reviewer)
    assert ids(client.get("/queue/escalated/")) == [str(escalated.pk)]
    assert str(escalated.pk) in ids(client.get("/queue/blocking/"))


def test_the_nav_shows_each_tabs_count(rita, agent_client, reviewer):
    for _ in range(3):
        d.blocking(agent_client)
    d.async_review(agent_client)
    lifecycle.action_decide(action=d.blocking(agent_client), user=reviewer, approve=True)
    html = rita.get("/nav/").content.decode()
    counts = dict(re.findall(r'id="count-(\w+)">(\d+)', html))
    pending = Action.objects.filter(status="pending", tier="blocking").count()  # the router lifts some
    assert counts == {"blocking": str(pending), "async": "1", "escalated": "0", "decided": "1"}
    assert pending >= 3


def test_filters_narrow_by_agent_type_risk_and_text(rita, agent_client):
    from tests.conftest import make_agent

    other = make_agent("crm-bot")
    refund = d.blocking(agent_client, summary="Refund the duplicate charge")
    email = d.blocking(other, **d.golden("GmailSendEmail"))
    assert ids(rita.get("/queue/blocking/", {"agent": "crm-bot"})) == [str(email.pk)]
    assert ids(rita.get("/queue/blocking/", {"action_type": "payments."})) == [str(refund.pk)]
    assert ids(rita.get("/queue/blocking/", {"q": "DUPLICATE"})) == [str(refund.pk)]
    _low, high = sorted([refund, email], key=lambda a: a.risk_score)
    above = rita.get("/queue/blocking/", {"risk_min": f"{high.risk_score:.4f}"})
    assert str(high.pk) in ids(above)
    assert ids(rita.get("/queue/blocking/", {"risk_min": "0", "risk_max": "0.01"})) == []
    bad = rita.get("/queue/blocking/", {"risk_min": "lots"})
    assert bad.status_code == 200 and "Enter a number between 0 and 1." in bad.content.decode()


def test_keyset_pages_walk_the_whole_queue_without_gaps_or_repeats(rita, agent_client, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "QUEUE_PAGE_SIZE": 2}
    created = [d.blocking(agent_client, summary=f"item {i}") for i in range(5)]
    seen, url = [], "/queue/blocking/"
    while url:
        response = rita.get(url)
        seen += ids(response)
        found = re.search(r'href="(\?[^"]*after=[^"]+)" rel="next"', response.content.decode())
        url = "/queue/blocking/" + found.group(1).replace("&amp;", "&") if found else None
    assert seen == [str(a.pk) for a in sorted(created, key=lambda a: (a.sla_due_at, a.pk))]


def test_htmx_polls_get_the_rows_and_fresh_nav_counts(rita, agent_client):
    d.blocking(agent_client)
    response = rita.get("/queue/blocking/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="queue-rows"') and "<html" not in html
    assert 'hx-swap-oob="true"' in html and 'id="count-blocking">1<' in html


def test_the_list_view_runs_the_same_few_queries_at_any_queue_depth(rita, agent_client):
    d.blocking(agent_client)
    rita.get("/queue/blocking/")  # warm the session
    import django.db

    with django.test.utils.CaptureQueriesContext(django.db.connection) as few:
        rita.get("/queue/blocking/")
    for _ in range(12):
        d.blocking(agent_client)
    with django.test.utils.CaptureQueriesContext(django.db.connection) as many:
        rita.get("/queue/blocking/")
    assert len(few) == len(many) <= 12, [q["sql"][:80] for q in many.captured_queries]


def test_the_decided_tab_runs_the_same_few_queries_at_any_depth(rita, agent_client, senior_reviewer):
    import django.db

    lifecycle.action_decide(action=d.blocking(agent_client), user=senior_reviewer, approve=True)
    rita.get("/queue/decided/")
    with django.test.utils.CaptureQueriesContext(django.db.connection) as few:
        rita.get("/queue/decided/")
    for _ in range(8):
        lifecycle.action_decide(action=d.blocking(agent_client), user=senior_reviewer, approve=False, note="no")
    with django.test.utils.CaptureQueriesContext(django.db.connection) as many:
        assert len(ids(rita.get("/queue/decided/"))) == 9
    assert len(few) == len(many) <= 12


def test_pages_send_a_strict_content_security_policy(rita, db):
    csp = rita.get("/queue/blocking/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_the_api_and_the_admin_keep_their_own_headers(rita, agent_client, db):
    """Their pages weren't built for the dashboard's policy (settings: EXCLUDE_URL_PREFIXES)."""
    assert "Content-Security-Policy" not in agent_client.submit()
    assert "Content-Security-Policy" not in agent_client.http.get("/api/v1/docs")
    assert "Content-Security-Policy" not in rita.get("/admin/login/")
    assert "Content-Security-Policy" in rita.get("/queue/async/")


def test_csrf_protects_every_form_and_htmx_request(reviewer, agent_client):
    action = d.blocking(agent_client)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(reviewer)
    page = browser.get(f"/actions/{action.pk}/").content.decode()
    assert browser.post(f"/actions/{action.pk}/decide", {"decision": "approve"}).status_code == 403
    assert browser.post(f"/actions/{action.pk}/claim", headers={"HX-Request": "true"}).status_code == 403
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)  # hx-headers on <body>
    claimed = browser.post(f"/actions/{action.pk}/claim", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert claimed.status_code == 200
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    decided = browser.post(f"/actions/{action.pk}/decide", {"decision": "approve", "csrfmiddlewaretoken": form_token})
    assert decided.status_code == 302 and Action.objects.get(pk=action.pk).status == "approved"


def test_a_kill_switch_banner_shows_on_every_reviewer_page_while_engaged(rita, agent_client):
    from reviewqueue.actions.kill_switches import kill_switch_set

    action = d.blocking(agent_client)
    assert "kill-switch-banner" not in rita.get("/queue/blocking/").content.decode()
    kill_switch_set(scope="agent:billing-bot", engaged=True, reason="runaway <b>refunds</b>", actor="user:olga")
    for path in ("/queue/blocking/", "/queue/decided/", f"/actions/{action.pk}/", "/nav/"):
        html = rita.get(path).content.decode()
        assert 'id="kill-switch-banner"' in html and "runaway &lt;b&gt;refunds&lt;/b&gt;" in html, path


def test_pages_have_an_icon_and_favicon_ico_leads_to_it(live_server):
    import httpx

    with httpx.Client(base_url=live_server.url, follow_redirects=True, timeout=30) as http:
        login = http.get("/accounts/login/")
        icon = http.get("/favicon.ico")
    assert 'rel="icon" href="/static/reviewqueue/favicon.svg"' in login.text
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_a_reviewer_signing_in_to_the_admin_is_sent_to_the_dashboard_not_told_the_password_is_wrong(client, db):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("rosa", password="pw-rosa-1")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    page = client.post("/admin/login/?next=/admin/", {"username": "rosa", "password": "pw-rosa-1"})
    text = page.content.decode()
    assert page.status_code == 200 and "The admin is for admins" in text and "/accounts/login/" in text
    assert "correct username and password for a staff account" not in text
    wrong = client.post("/admin/login/?next=/admin/", {"username": "rosa", "password": "nope"}).content.decode()
    assert "The admin is for admins" not in wrong  # a wrong password says nothing more than before


def test_the_status_column_says_an_item_is_open_and_who_holds_it(client, agent_client, reviewer, senior_reviewer):
    open_item = d.blocking(agent_client, summary="Nobody has looked at this one")
    held = d.blocking(agent_client, summary="Sam has this one")
    lifecycle.action_claim(action=held, user=senior_reviewer)
    client.force_login(reviewer)
    html = client.get("/queue/blocking/").content.decode()
    row = html[html.index(f'data-id="{open_item.pk}"') :]
    assert "open · nobody on it yet" in row[: row.index("</tr>")]
    row = html[html.index(f'data-id="{held.pk}"') :]
    assert "sam is on it" in row[: row.index("</tr>")]
