"""Signing in is throttled (django-axes on the shared store) and failed sign-ins are audited (issue 11)."""

import json
import re
import time
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth.models import Group, User

from reviewqueue.audit.trail import audit_verify
from reviewqueue.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "right-Horse-42"
WRONG = [f"guess-{n}-Zebra" for n in range(10)]


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    """Each sign-in hashes a password; the default hasher takes most of a second on a busy machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def short_lockout(settings):
    """The shipped limit (5 failures, which the tests below count out) with a cool-off short enough to wait out."""
    settings.AXES_COOLOFF_TIME = timedelta(seconds=3)
    return settings.AXES_COOLOFF_TIME


@pytest.fixture
def reviewer_account(_fast_hashing):
    user = User.objects.create_user("rhea", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def _sign_in(http: httpx.Client, username: str, password: str, path: str = "/accounts/login/") -> httpx.Response:
    page = http.get(path)
    assert page.status_code == 200, page.text[:300]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return http.post(
        path,
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token,
            "next": "/admin/" if path.startswith("/admin/") else "/",
        },
    )


def _signed_in(http: httpx.Client) -> bool:
    return http.get("/queue/blocking/").status_code == 200


def test_five_failures_lock_the_account_out_even_for_the_right_password_until_the_cool_off(
    live_server, reviewer_account, short_lockout
):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for password in WRONG[:4]:
            answer = _sign_in(http, "rhea", password)
            assert answer.status_code == 200 and "match" in answer.text
        fifth = _sign_in(http, "rhea", WRONG[4])
        assert fifth.status_code == 429
        assert "Too many failed sign-ins" in fifth.text

        refused = _sign_in(http, "rhea", PASSWORD)

        assert refused.status_code == 429, refused.text[:300]
        assert "Too many failed sign-ins" in refused.text and 'name="password"' in refused.text  # the form, again
        assert int(refused.headers["Retry-After"]) == 3
        assert not _signed_in(http)

        time.sleep(short_lockout.total_seconds() + 0.5)
        assert _sign_in(http, "rhea", PASSWORD).status_code == 302
        assert _signed_in(http)


def test_failed_sign_ins_are_audited_without_the_password(live_server, reviewer_account, short_lockout):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for password in WRONG[:8]:  # five counted, three refused during the lockout
            _sign_in(http, "rhea", password)

    events = list(AuditEvent.objects.filter(kind="user.login_failed").order_by("seq"))
    assert [e.data["failures"] for e in events] == [1, 2, 3, 4, 5]  # refusals during the lockout add nothing
    assert [e.data["locked_out"] for e in events] == [False] * 4 + [True]
    assert all(e.data["username"] == "rhea" and e.data["ip"] == "127.0.0.1" for e in events)
    assert all(e.actor == "ip:127.0.0.1" for e in events)
    stored = json.dumps([e.data for e in events])
    assert not any(password in stored for password in WRONG)
    assert audit_verify()[1] is None


def test_the_admin_login_is_throttled_too(live_server, short_lockout):
    User.objects.create_superuser("root", password=PASSWORD)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for password in WRONG[:5]:
            _sign_in(http, "root", password, path="/admin/login/")

        refused = _sign_in(http, "root", PASSWORD, path="/admin/login/")

        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text and 'id="login-form"' in refused.text
        assert http.get("/admin/").status_code == 302  # still signed out
    assert AuditEvent.objects.filter(kind="user.login_failed", data__path="/admin/login/").count() == 5


def test_a_lockout_holds_one_username_from_one_address_not_everyone(live_server, reviewer_account, short_lockout):
    colleague = User.objects.create_user("remy", password=PASSWORD)
    colleague.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    with httpx.Client(base_url=live_server.url, timeout=30) as attacker:
        for password in WRONG[:5]:
            _sign_in(attacker, "rhea", password)
        assert _sign_in(attacker, "rhea", PASSWORD).status_code == 429
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert _sign_in(http, "remy", PASSWORD).status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(live_server, reviewer_account, short_lockout):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for password in WRONG[:4]:
            _sign_in(http, "rhea", password)
        assert _sign_in(http, "rhea", PASSWORD).status_code == 302
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for password in WRONG[:4]:
            assert _sign_in(http, "rhea", password).status_code == 200
        assert _sign_in(http, "rhea", PASSWORD).status_code == 302
