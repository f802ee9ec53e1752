"""A new agent key (and webhook secret) from the admin is shown once in the
response itself: never in a cookie, never in a later page (issue 11)."""

import re
import zlib
from html import unescape

import httpx
import pytest
from django.contrib.auth.models import User
from django.core import signing

from reviewqueue.models import Agent

pytestmark = pytest.mark.django_db(transaction=True)

KEY = re.compile(r"rqa_[A-Za-z0-9_-]{43}")


def _cookie_texts(response: httpx.Response) -> list[str]:
    """Every Set-Cookie value, as sent and decoded as Django signs cookies
    (base64, compressed when it starts with a dot), so nothing hides in one."""
    texts = []
    for header in response.headers.get_list("set-cookie"):
        value = header.split(";", 1)[0].split("=", 1)[-1].strip('"')
        texts.append(header)
        for part in value.split(":"):
            try:
                raw = signing.b64_decode(part.lstrip(".").encode())
                texts.append((zlib.decompress(raw) if part.startswith(".") else raw).decode("utf-8", "replace"))
            except Exception:  # noqa: S112 (not base64, or not compressed: the raw header is kept above)
                continue
    return texts


class Admin:
    """A signed-in admin in a browser: every response it got is kept."""

    def __init__(self, base_url: str):
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.responses: list[httpx.Response] = []
        page = self.get("/admin/login/")
        self.post("/admin/login/", {"username": "root", "password": "pw-root-1", "next": "/admin/"}, page)

    def get(self, path: str) -> httpx.Response:
        self.responses.append(self.http.get(path))
        return self.responses[-1]

    def post(self, path: str, data: dict, form_page: httpx.Response | None = None) -> httpx.Response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', (form_page or self.get(path)).text).group(1)
        self.responses.append(self.http.post(path, data={**data, "csrfmiddlewaretoken": token}))
        return self.responses[-1]

    def assert_nowhere_but(self, shown: httpx.Response, *secrets: str) -> None:
        """The secrets are in `shown`'s page and in no cookie and no other page."""
        for response in self.responses:
            for secret in secrets:
                assert not any(secret in text for text in _cookie_texts(response)), response.url
                if response is not shown:
                    assert secret not in unescape(response.text), response.url


@pytest.fixture
def admin_browser(live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("root", password="pw-root-1")
    browser = Admin(live_server.url)
    yield browser
    browser.http.close()


def _works(live_server, key: str) -> bool:
    response = httpx.get(f"{live_server.url}/api/v1/kill-switch", headers={"Authorization": f"Bearer {key}"})
    return response.status_code == 200


def _add_form(admin: Admin) -> tuple[httpx.Response, dict]:
    page = admin.get("/admin/reviewqueue/agent/add/")
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    hidden.pop("csrfmiddlewaretoken", None)
    return page, hidden


def test_creating_an_agent_shows_its_key_and_webhook_secret_once_and_never_in_a_cookie(live_server, admin_browser):
    page, hidden = _add_form(admin_browser)

    shown = admin_browser.post(
        "/admin/reviewqueue/agent/add/",
        {
            **hidden,
            "name": "invoice-bot",
            "description": "",
            "scopes": '["invoices.*"]',
            "rate_limit_per_minute": "120",
            "conversation_rate_limit_per_minute": "30",
            "is_active": "on",
        },
        page,
    )

    assert shown.status_code == 200, shown.text[:500]
    agent = Agent.objects.get(name="invoice-bot")
    key = KEY.search(shown.text).group(0)
    assert agent.webhook_secret in shown.text
    assert "no-store" in shown.headers["Cache-Control"]
    assert _works(live_server, key)
    admin_browser.get("/admin/reviewqueue/agent/")
    admin_browser.get(f"/admin/reviewqueue/agent/{agent.pk}/change/")
    admin_browser.get("/admin/")
    admin_browser.assert_nowhere_but(shown, key, agent.webhook_secret)


def test_rotating_keys_in_the_admin_shows_the_new_keys_once_and_never_in_a_cookie(live_server, admin_browser):
    from tests.conftest import make_agent

    first, second = make_agent("rota-1"), make_agent("rota-2")

    shown = admin_browser.post(
        "/admin/reviewqueue/agent/",
        {
            "action": "rotate_key",
            "index": "0",
            "_selected_action": [first.agent.pk, second.agent.pk],
        },
    )

    assert shown.status_code == 200, shown.text[:500]
    keys = KEY.findall(shown.text)
    assert len(set(keys)) == 2
    assert all(_works(live_server, key) for key in keys)
    assert not _works(live_server, first.key) and not _works(live_server, second.key)
    assert "no-store" in shown.headers["Cache-Control"]
    admin_browser.get("/admin/reviewqueue/agent/")
    admin_browser.get(f"/admin/reviewqueue/agent/{first.agent.pk}/change/")
    admin_browser.assert_nowhere_but(shown, *keys)
