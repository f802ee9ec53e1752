"""Settings from the environment: safe local defaults, loud failure in production."""

import json
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from config.env import env_bool, env_duration, parse_duration
from tests.conftest import make_agent, submission
from tests.processes import Gunicorn, database_url

STRONG_KEY = secrets.token_urlsafe(50)


def _boot(tmp_path, **env):
    base = {"PATH": os.environ["PATH"], "REVIEWQUEUE_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup()",
        ],
        env={**base, **env},
        capture_output=True,
        text=True,
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
    done = _boot(
        tmp_path,
        REVIEWQUEUE_ENV="production",
        SECRET_KEY_FILE=str(secret),
        ALLOWED_HOSTS="rq.example",
        REVIEWQUEUE_AUDIT_CHECKPOINT_KEY="c" * 40,
    )
    assert done.returncode == 0, done.stderr


def test_nonsense_booleans_and_durations_fail_loudly(monkeypatch, tmp_path):
    monkeypatch.setenv("DEBUG", "yes please")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", default=False)
    monkeypatch.setenv("REVIEWQUEUE_SLA_BLOCKING", "soon")
    with pytest.raises(ImproperlyConfigured, match="REVIEWQUEUE_SLA_BLOCKING"):
        env_duration("REVIEWQUEUE_SLA_BLOCKING", default="15m")
    assert _boot(tmp_path, DEBUG="maybe").returncode != 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


# ------------------------------------------------------------ production ---


def _production(tmp_path, **env):
    return _boot(
        tmp_path,
        REVIEWQUEUE_ENV="production",
        ALLOWED_HOSTS="rq.example",
        REVIEWQUEUE_AUDIT_CHECKPOINT_KEY=secrets.token_urlsafe(40),
        **env,
    )


@pytest.mark.parametrize(
    "key, why",
    [
        ("django-insecure-" + secrets.token_urlsafe(50), "django-insecure"),  # what startproject writes
        ("change-me-" + secrets.token_urlsafe(50), "change-me"),  # a documentation placeholder, padded
        (secrets.token_urlsafe(30), "40 characters"),
        ("s" * 50, "predictable"),
        ("0123456789" * 6, "predictable"),
        ("abab" * 20, "predictable"),
    ],
)
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
    return Gunicorn(
        {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url(),
            "REVIEWQUEUE_VAR_DIR": str(tmp_path),
            "REVIEWQUEUE_ENV": "production",
            "SECRET_KEY": STRONG_KEY,
            "ALLOWED_HOSTS": "rq.example",
            "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY": secrets.token_urlsafe(40),
            **env,
        }
    )


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


# -------------------------------------------------------------- database ---


def _database_settings(tmp_path, **env) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
            "django.setup(); from django.conf import settings; "
            "db = settings.DATABASES['default']; "
            "print(json.dumps({'pool': db['OPTIONS'].get('pool'), 'max_age': db['CONN_MAX_AGE'], "
            "'prepare_threshold': db['OPTIONS'].get('prepare_threshold', 'unset')}))",
        ],
        env={
            "PATH": os.environ["PATH"],
            "REVIEWQUEUE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql://app@db.example:5432/reviewqueue",
            **env,
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_postgresql_connections_are_pooled_when_only_the_url_is_set(tmp_path):
    database = _database_settings(tmp_path)
    assert database["pool"] == {"min_size": 2, "max_size": 16, "timeout": 10}
    assert database["max_age"] == 0
    assert database["prepare_threshold"] == 0  # the submit path's statements are prepared


def test_behind_pgbouncer_the_pool_stays_and_nothing_is_prepared(tmp_path):
    database = _database_settings(tmp_path, DATABASE_PREPARED_STATEMENTS="false")
    assert database["pool"]["max_size"] == 16
    assert database["prepare_threshold"] is None


def test_the_pool_can_be_sized_or_turned_off(tmp_path):
    assert _database_settings(tmp_path, DATABASE_POOL_MAX_SIZE="4")["pool"]["max_size"] == 4
    assert _database_settings(tmp_path, DATABASE_POOL_MAX_SIZE="0") == {
        "pool": None,
        "max_age": 0,
        "prepare_threshold": 0,
    }


def test_persistent_connections_replace_the_pool_and_never_join_it(tmp_path):
    assert _database_settings(tmp_path, DATABASE_CONN_MAX_AGE="60")["pool"] is None
    assert _database_settings(tmp_path, DATABASE_CONN_MAX_AGE="60")["max_age"] == 60
    both = _boot(
        tmp_path,
        DATABASE_URL="postgresql://app@db.example:5432/reviewqueue",
        DATABASE_POOL_MAX_SIZE="8",
        DATABASE_CONN_MAX_AGE="60",
    )
    assert both.returncode != 0 and "DATABASE_POOL_MAX_SIZE" in both.stderr


def _sessions_opened() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts sessions in pg_stat_database; CI runs it")
@pytest.mark.django_db(transaction=True)
def test_a_server_given_only_a_postgresql_url_reuses_its_database_connections(tmp_path):
    agent = make_agent("steady", rate_limit_per_minute=1000)
    server = Gunicorn({"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path)})
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {agent.key}"}, timeout=30) as http:
            http.get("/api/v1/kill-switch")  # the pool opens
            time.sleep(0.5)
            before = _sessions_opened()
            answers = [
                http.post("/api/v1/actions", json=submission(summary=f"Refund ${n}")).status_code for n in range(30)
            ]
            after = _sessions_opened()
    finally:
        server.stop()
    assert answers == [201] * 30
    assert after - before <= 4, f"{after - before} database sessions opened for 30 submissions"
