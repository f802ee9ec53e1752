"""Settings from the environment: safe local defaults, loud failure in production."""

import os
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_duration, parse_duration

STRONG_KEY = secrets.token_urlsafe(50)


def _boot(tmp_path, **env):
    base = {"PATH": os.environ["PATH"], "REVIEWQUEUE_VAR_DIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()"],
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
