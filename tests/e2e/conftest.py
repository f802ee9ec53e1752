"""Browser tests: Playwright driving Debian's chromium against the live server.

One browser per session (pytest-playwright's `browser`); each test opens
the contexts it needs (two for the race). Waits are on conditions, never sleeps.
"""

import os

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

# Playwright's sync API runs an event loop in this thread; pytest-django's
# database setup refuses to run beside it unless told it is safe (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# Records anything an injected script or inline markup tries: CSP violations
# (inline script/handler/style blocked), dialogs are caught by the page hook.
WATCH_SCRIPT = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS],
    }


@pytest.fixture(autouse=True)
def _fast_polling(settings):
    """New items show up within a second in tests (3 s in production)."""
    settings.REVIEWQUEUE = {**django_settings.REVIEWQUEUE, "QUEUE_POLL_SECONDS": 1}


@pytest.fixture
def signed_in(browser, live_server):
    """Open a browser context signed in as a user (session cookie, no form)."""
    contexts = []

    def open_as(user: User, *, width: int = 1280, height: int = 900):
        client = Client()
        client.force_login(user)
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        context.set_default_timeout(10_000)
        context.add_init_script(WATCH_SCRIPT)
        context.add_cookies(
            [
                {
                    "name": django_settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
        return page

    yield open_as
    for context in contexts:
        context.close()
