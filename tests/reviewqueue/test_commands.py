"""The management commands an operator types."""

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from reviewqueue.models import Agent, KillSwitch

pytestmark = pytest.mark.django_db


def _last_word(capsys):
    return capsys.readouterr().out.strip().splitlines()[-1].split()[-1]


def _status(key, path="/api/v1/kill-switch"):
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(path).status_code


def test_create_agent_prints_a_working_key_as_the_last_word(capsys):
    call_command("create_agent", "billing-bot", "--scope", "payments.*", "--scope", "crm.read", "--rate-limit", "30")

    key = _last_word(capsys)
    agent = Agent.objects.get(name="billing-bot")
    assert agent.scopes == ["payments.*", "crm.read"] and agent.rate_limit_per_minute == 30
    assert _status(key) == 200


def test_create_agent_refuses_a_duplicate_or_bad_name(capsys):
    call_command("create_agent", "bot", "--scope", "*")
    with pytest.raises(CommandError):
        call_command("create_agent", "bot", "--scope", "*")
    with pytest.raises(CommandError):
        call_command("create_agent", "bad name!", "--scope", "*")
    assert Agent.objects.count() == 1


def test_rotate_and_revoke(capsys):
    call_command("create_agent", "bot", "--scope", "*")
    old = _last_word(capsys)
    call_command("rotate_agent_key", "bot")
    new = _last_word(capsys)
    assert (_status(old), _status(new)) == (401, 200)

    call_command("revoke_agent_key", "bot")
    assert _status(new) == 401


def test_create_token_prints_an_ops_token(ops_user, capsys):
    call_command("create_token", "olga")
    assert _status(_last_word(capsys), "/api/v1/ops/kill-switch") == 200
    with pytest.raises(CommandError):
        call_command("create_token", "nobody")


def test_kill_switch_command(capsys):
    call_command("kill_switch", "engage", "--scope", "agent:bot", "--reason", "looping")
    assert KillSwitch.objects.get(scope="agent:bot").engaged
    call_command("kill_switch", "release", "--scope", "agent:bot", "--reason", "fixed")
    assert not KillSwitch.objects.get(scope="agent:bot").engaged
    with pytest.raises(CommandError, match="scope"):
        call_command("kill_switch", "engage", "--scope", "everything", "--reason", "x")


def test_the_cli_prints_the_key_as_the_last_word_from_a_real_process(tmp_path):
    env = {"REVIEWQUEUE_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, env=env)
    done = subprocess.run(
        [sys.executable, "manage.py", "create_agent", "cli-bot", "--scope", "*"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip().splitlines()[-1].split()[-1].startswith("rqa_")


def test_bootstrap_demo_prints_the_demo_agents_working_key_on_every_start(capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    first = _last_word(capsys)
    call_command("bootstrap_demo")
    again = _last_word(capsys)

    assert again == first and _status(first) == 200
    assert (tmp_path / "demo-agent.key").read_text() == first

    (tmp_path / "demo-agent.key").unlink()  # the only copy is gone: a new key, and the old one stops working
    call_command("bootstrap_demo")
    renewed = _last_word(capsys)
    assert renewed != first and _status(renewed) == 200 and _status(first) == 401
    assert (tmp_path / "demo-agent.key").read_text() == renewed


def test_demo_logins_stay_the_same_across_starts_and_are_kept_in_a_private_file(capsys, settings, tmp_path):
    from django.contrib.auth.models import User

    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    first = capsys.readouterr().out
    call_command("bootstrap_demo")
    again = capsys.readouterr().out

    logins = tmp_path / "demo-logins.txt"
    assert again == first and str(logins) in first
    passwords = {line.split()[0]: line.split()[1] for line in logins.read_text().splitlines() if line.startswith("  ")}
    assert set(passwords) == {"admin", "reviewer", "senior", "ops"}
    assert all(User.objects.get(username=user).check_password(password) for user, password in passwords.items())
    assert logins.stat().st_mode & 0o777 == 0o600
    assert logins.read_text().splitlines()[-1] == f"Demo agent key: {(tmp_path / 'demo-agent.key').read_text()}"
