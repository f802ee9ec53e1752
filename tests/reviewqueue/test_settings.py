"""Settings from the environment: safe local defaults, loud failure in production."""

import os
import secrets
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_duration, parse_duration
from tests.processes import Gunicorn, database_url

STRONG_KEY = secrets.token_urlsafe(50)


def _boot(tmp_path, **env):
    base = {"PATH": os.environ["PATH"], "REVIEWQUEUE_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
                               "django.setup()"],
        env={**base, **env}, capture_output=True, text=True,
    )


def test_a_local_run_needs_no_configuration(tmp_path):
    assert _boot(tmp_path).returncode == 0
    assert (tmp_path / "secret_key").exists()


def test_production_without_a_secret_key_fails_loudly(tmp_path):
    done = _boot(tmp_path, REVIEWQUEUE_ENV="production", ALLOWED_HOSTS="rq.example")
    assert done.returncode != 0 and "SECRET_KEY" in done.stderr


def test_production_without_allowed_hosts_fails_loudly(tmp_path):
    done = _boot(tmp_path, REVIEWQUEUE_ENV="production", SECRET_KEY=STRONG_KEY)
    assert done.returncode != 0 and "ALLOWED_HOSTS" in done.stderr


def test_production_reads_the_secret_from_a_file(tmp_path):
    secret = tmp_path / "key"
    secret.write_text(STRONG_KEY)
    done = _boot(tmp_path, REVIEWQUEUE_ENV="production", SECRET_KEY_FILE=str(secret), ALLOWED_HOSTS="rq.example",
                 REVIEWQUEUE_AUDIT_CHECKPOINT_KEY="c" * 40)
    assert done.returncode == 0, done.stderr


def test_nonsense_booleans_and_durations_fail_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBUG", "yes please")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", default=False)
    monkeypatch.setenv("REVIEWQUEUE_SLA_BLOCKING", "soon")
    with pytest.raises(ImproperlyConfigured, match="REVIEWQUEUE_SLA_BLOCKING"):
        env_duration("REVIEWQUEUE_SLA_BLOCKING", default="15m")
    assert _boot(tmp_path, DEBUG="maybe").returncode != 0


@pytest.mark.parametrize("text, expected", [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)),
                                            ("24h", timedelta(hours=24)), ("7d", timedelta(days=7))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


# ------------------------------------------------------------ production ---

def _production(tmp_path, **env):
    return _boot(tmp_path, REVIEWQUEUE_ENV="production", ALLOWED_HOSTS="rq.example",
                 REVIEWQUEUE_AUDIT_CHECKPOINT_KEY=secrets.token_urlsafe(40), **env)


@pytest.mark.parametrize("key, why", [
    ("django-insecure-" + secrets.token_urlsafe(50), "django-insecure"),  # what startproject writes
    ("change-me-" + secrets.token_urlsafe(50), "change-me"),  # a documentation placeholder, padded
    (secrets.token_urlsafe(30), "40 characters"),
    ("s" * 50, "predictable"),
    ("0123456789" * 6, "predictable"),
    ("abab" * 20, "predictable"),
])
def test_production_refuses_a_weak_secret_key(tmp_path, key, why):
    done = _production(tmp_path, SECRET_KEY=key)
    assert done.returncode != 0
    assert "SECRET_KEY is too weak for production" in done.stderr and why in done.stderr
    assert key not in done.stderr  # the refusal never prints the key itself


def test_production_refuses_a_weak_secret_key_from_a_file_too(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("django-insecure-" + secrets.token_urlsafe(50))
    done = _production(tmp_path, SECRET_KEY_FILE=str(secret))
    assert done.returncode != 0 and "SECRET_KEY is too weak" in done.stderr


def test_production_accepts_generated_secret_keys(tmp_path):
    for key in (secrets.token_hex(32), secrets.token_urlsafe(38)):
        done = _production(tmp_path, SECRET_KEY=key)
        assert done.returncode == 0, done.stderr


def test_a_local_run_keeps_any_secret_key(tmp_path):
    assert _boot(tmp_path, SECRET_KEY="dev").returncode == 0


def _production_server(tmp_path, **env) -> Gunicorn:
    return Gunicorn({"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path),
                     "REVIEWQUEUE_ENV": "production", "SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "rq.example",
                     "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(40), **env})


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_production_redirects_to_https_and_sends_hsts_and_secure_cookies(tmp_path):
    server = _production_server(tmp_path)
    try:
        with httpx.Client(base_url=server.url, headers={"Host": "rq.example"}, timeout=30) as http:
            plain = http.get("/accounts/login/")
            assert plain.status_code == 301
            assert plain.headers["Location"] == "https://rq.example/accounts/login/"
            # Without the switch a client's own X-Forwarded-Proto is not believed.
            spoofed = http.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
            assert spoofed.status_code == 301
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_behind_a_tls_proxy_the_named_header_marks_https(tmp_path):
    server = _production_server(tmp_path, REVIEWQUEUE_TLS_PROXY_HEADER="X-Forwarded-Proto")
    try:
        with httpx.Client(base_url=server.url, headers={"Host": "rq.example"}, timeout=30) as http:
            assert http.get("/accounts/login/").status_code == 301  # the proxy's plain-HTTP side is redirected
            page = http.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    finally:
        server.stop()
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    cookies = page.headers.get_list("set-cookie")
    assert cookies and all("; Secure" in cookie for cookie in cookies)


def test_a_tls_proxy_header_must_be_a_header_name(tmp_path):
    done = _production(tmp_path, SECRET_KEY=STRONG_KEY, REVIEWQUEUE_TLS_PROXY_HEADER="X-Proto: https")
    assert done.returncode != 0 and "REVIEWQUEUE_TLS_PROXY_HEADER" in done.stderr
