"""Secrets written into var/ are readable by their owner only, whatever the umask (issue 11)."""

import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command

from config.env import write_private_file

ROOT = Path(__file__).resolve().parent.parent.parent
BOOT = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup()"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def _umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.django_db(transaction=True)
def test_the_demo_agents_key_file_is_owner_only_when_created_and_when_renewed(live_server, settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # demo users get passwords
    key_file = tmp_path / "demo-agent.key"
    with _umask(0):  # a careless shell: files would come out world-readable
        call_command("bootstrap_demo")
        first = capsys.readouterr().out.split()[-1]
        assert _mode(key_file) == 0o600

        key_file.write_text("rqa_stale")  # an old copy, world-readable, holding a key that no longer works
        key_file.chmod(0o644)
        call_command("bootstrap_demo")
        renewed = capsys.readouterr().out.split()[-1]

    assert renewed != first and key_file.read_text() == renewed
    assert _mode(key_file) == 0o600
    answer = httpx.get(f"{live_server.url}/api/v1/kill-switch", headers={"Authorization": f"Bearer {renewed}"})
    assert answer.status_code == 200
    assert not list(tmp_path.glob(".demo-agent.key.*"))  # no temporary file left behind


def test_the_generated_secret_key_is_owner_only(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", BOOT],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "REVIEWQUEUE_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        umask=0,
    )
    assert done.returncode == 0, done.stderr
    assert _mode(tmp_path / "secret_key") == 0o600
    assert len((tmp_path / "secret_key").read_text()) >= 50


def test_a_private_file_is_never_readable_by_others_even_for_a_moment(tmp_path):
    """The file is created 0600 and renamed into place: a reader that opens the
    path at any moment finds the old file or the new, private one."""
    target = tmp_path / "token"
    target.write_text("old")
    target.chmod(0o644)
    with _umask(0):
        write_private_file(target, "new secret")
    assert target.read_text() == "new secret" and _mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["token"]
