"""Signed checkpoints of the audit chain's head, outside the database: a
trail rewritten consistently or cut short fails verify_audit and
export_audit, and a forged checkpoint is itself reported."""

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
from contextlib import contextmanager

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from reviewqueue.audit.trail import CheckpointLog, audit_check, chain_hash, event_body
from reviewqueue.core.canonical import canonical_json
from reviewqueue.models import AuditEvent
from tests.conftest import make_agent, submission
from tests.processes import ROOT, Broker, Celery, database_url, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _submit(url: str, agent, count: int, *, first: int = 1) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {agent.key}"}, timeout=30) as http:
        for n in range(first, first + count):
            assert http.post("/api/v1/actions", json=submission(summary=f"Refund ${n}00")).status_code == 201


def _checkpoints() -> list[dict]:
    path = settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"]
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def _as_the_owner():
    """What the tables' owner can do: switch the trigger off for a transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE reviewqueue_auditevent DISABLE TRIGGER reviewqueue_audit_no_change")
        yield cursor
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE reviewqueue_auditevent ENABLE TRIGGER reviewqueue_audit_no_change")


def _rewrite_consistently(seq: int, data: dict) -> None:
    """Change one event and recompute every hash from it on, as an attacker would."""
    prev_hash = AuditEvent.objects.get(seq=seq - 1).hash
    with _as_the_owner() as cursor:
        for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
            if event.seq == seq:
                event.data = data
            body = event_body(
                seq=event.seq,
                created_at=event.created_at,
                kind=event.kind,
                actor=event.actor,
                action_id=event.action_id,
                agent_id=event.agent_id,
                data=event.data,
            )
            new_hash = chain_hash(prev_hash, body)
            cursor.execute(
                "UPDATE reviewqueue_auditevent SET data = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [json.dumps(event.data), prev_hash, new_hash, event.seq],
            )
            prev_hash = new_hash


def _cut_after(seq: int) -> None:
    with _as_the_owner() as cursor:
        if seq == 0 and connection.vendor == "postgresql":
            cursor.execute("TRUNCATE reviewqueue_auditevent")  # the owner still may
        else:
            cursor.execute("DELETE FROM reviewqueue_auditevent WHERE seq > %s", [seq])


def _verify_audit_process() -> subprocess.CompletedProcess:
    """`manage.py verify_audit` as an operator runs it, with the same key and file."""
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url(),
        "REVIEWQUEUE_ENV": "test",
        "REVIEWQUEUE_VAR_DIR": str(settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"].parent),
        "REVIEWQUEUE_AUDIT_CHECKPOINT_PATH": str(settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"]),
        "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY": settings.REVIEWQUEUE["AUDIT_CHECKPOINT_KEY"],
    }
    return subprocess.run(
        [sys.executable, "manage.py", "verify_audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_verify_audit_signs_the_head_and_an_untouched_trail_keeps_passing(live_server, capsys):
    agent = make_agent()
    _submit(live_server.url, agent, 3)
    call_command("verify_audit")
    assert "intact: 5 events verified" in capsys.readouterr().out
    assert [(line["seq"], line["hash"]) for line in _checkpoints()] == [(5, AuditEvent.objects.get(seq=5).hash)]

    _submit(live_server.url, agent, 2, first=4)
    call_command("verify_audit")
    assert "intact: 7 events verified, matching 1 signed checkpoints" in capsys.readouterr().out
    assert [line["seq"] for line in _checkpoints()] == [5, 7]
    call_command("verify_audit")  # nothing new: no new checkpoint
    assert [line["seq"] for line in _checkpoints()] == [5, 7]


def test_a_trail_rewritten_consistently_fails_verify_audit_naming_the_event(live_server):
    _submit(live_server.url, make_agent(), 4)
    assert _verify_audit_process().returncode == 0  # signs event #6

    _rewrite_consistently(4, {"summary": "nothing happened here"})
    assert audit_check(checkpoints=CheckpointLog()).broken is None, "the chain alone can't tell"

    done = _verify_audit_process()
    assert done.returncode == 1
    assert "audit chain broken at event #6: its hash differs from the signed checkpoint of" in done.stderr
    assert "the chain up to it was rewritten" in done.stderr
    assert len(_checkpoints()) == 1, "a broken chain is never signed"


@pytest.mark.parametrize("keep", [4, 0], ids=["newest-deleted", "emptied-by-the-owner"])
def test_a_trail_cut_short_fails_verify_audit(live_server, keep):
    _submit(live_server.url, make_agent(), 4)
    call_command("verify_audit")  # signs event #6

    _cut_after(keep)
    assert audit_check(checkpoints=CheckpointLog()).broken is None, "the chain alone can't tell"

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    assert f"audit chain broken at event #{keep + 1}: the trail ends at event #{keep} but the signed checkpoint" in str(
        failure.value
    )
    assert "vouches for event #6: the newest events were deleted" in str(failure.value)


def _forge_checkpoint(seq: int, digest: str) -> None:
    """A checkpoint line as someone without the key would write it."""
    at = "2030-01-01T00:00:00+00:00"
    signature = hmac.new(
        b"a guessed key", canonical_json({"at": at, "hash": digest, "seq": seq}).encode(), hashlib.sha256
    ).hexdigest()
    with settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"].open("a") as file:
        file.write(canonical_json({"at": at, "hash": digest, "seq": seq, "sig": signature}) + "\n")


def test_a_forged_checkpoint_is_reported(live_server):
    _submit(live_server.url, make_agent(), 2)
    call_command("verify_audit")  # line 1, genuine
    _forge_checkpoint(4, "f" * 64)  # line 2
    with settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"].open("a") as file:
        file.write("not even json\n")  # line 3

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    message = str(failure.value)
    assert "audit checkpoints forged: line(s) 2, 3 of" in message and "bad signature" in message
    assert "audit chain broken" not in message


def test_a_rewrite_covered_by_a_forged_checkpoint_still_fails_naming_both(live_server):
    _submit(live_server.url, make_agent(), 3)
    call_command("verify_audit")  # signs event #5
    _rewrite_consistently(3, {"summary": "nothing happened here"})
    _forge_checkpoint(5, AuditEvent.objects.get(seq=5).hash)

    with pytest.raises(CommandError) as failure:
        call_command("verify_audit")
    assert "audit chain broken at event #5: its hash differs from the signed checkpoint" in str(failure.value)
    assert "line(s) 2 of" in str(failure.value)


def test_export_audit_checks_the_trail_against_the_checkpoints(live_server, tmp_path):
    _submit(live_server.url, make_agent(), 4)
    call_command("verify_audit")  # signs event #6
    out = tmp_path / "audit.jsonl"

    call_command("export_audit", "--output", str(out))  # untouched: passes
    assert len(out.read_text().splitlines()) == 6
    call_command("export_audit", "--since", "1d", "--output", str(out))
    assert len(out.read_text().splitlines()) == 6

    _rewrite_consistently(5, {"summary": "nothing happened here"})
    with pytest.raises(
        CommandError,
        match=r"does not match its checkpoints: audit chain broken at event #6: its hash "
        r"differs from the signed checkpoint",
    ):
        call_command("export_audit", "--since", "1d", "--output", str(out))
    assert len(out.read_text().splitlines()) == 6, "still exported, for the investigation"

    _cut_after(4)
    with pytest.raises(
        CommandError,
        match=r"the trail ends at event #4 but the signed checkpoint .* vouches for "
        r"event #6",
    ):
        call_command("export_audit", "--output", str(out))


@pytest.mark.slow
def test_beat_signs_the_head_every_interval_and_never_signs_a_tampered_one(live_server, tmp_path):
    """Real Celery beat and worker: the head is signed without anyone running
    verify_audit; once the newest event is deleted, the worker reports it and
    signs nothing more."""
    path = settings.REVIEWQUEUE["AUDIT_CHECKPOINT_PATH"]
    broker = Broker(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker.url,
        "REVIEWQUEUE_VAR_DIR": str(tmp_path),
        "REVIEWQUEUE_ENV": "test",
        "PYTHONUNBUFFERED": "1",
        "REVIEWQUEUE_AUDIT_CHECKPOINT_PATH": str(path),
        "REVIEWQUEUE_AUDIT_CHECKPOINT_INTERVAL": "1s",
        "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY": settings.REVIEWQUEUE["AUDIT_CHECKPOINT_KEY"],
    }
    worker, beat = Celery("worker", env, tmp_path), Celery("beat", env, tmp_path)
    worker.start()
    beat.start()
    try:
        agent = make_agent(rate_limit_per_minute=1000)
        _submit(live_server.url, agent, 3)
        assert wait_until(lambda: [line["seq"] for line in _checkpoints()][-1:] == [5], timeout=30)
        _submit(live_server.url, agent, 2, first=4)
        assert wait_until(lambda: [line["seq"] for line in _checkpoints()][-1:] == [7], timeout=30)

        signed = AuditEvent.objects.get(seq=7).hash
        _cut_after(6)
        _submit(live_server.url, agent, 1, first=6)  # a new #7 in place of the deleted one
        assert wait_until(
            lambda: any("differs from the newest signed checkpoint" in line for line in worker.output), timeout=30
        ), "".join(worker.output[-40:])
    finally:
        beat.stop()
        worker.stop()
        broker.stop()
    assert {line["hash"] for line in _checkpoints() if line["seq"] >= 7} == {signed}
    with pytest.raises(CommandError, match="event #7: its hash differs from the signed checkpoint"):
        call_command("verify_audit")


def test_production_refuses_to_start_without_a_checkpoint_key(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "REVIEWQUEUE_VAR_DIR": str(tmp_path),
        "REVIEWQUEUE_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "rq.example",
    }
    boot = [
        sys.executable,
        "-c",
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()",
    ]
    done = subprocess.run(boot, env=env, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0 and "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY" in done.stderr
    assert not (tmp_path / "audit_checkpoint_key").exists()

    key_file = tmp_path / "checkpoint-key"
    key_file.write_text(secrets.token_urlsafe(40))
    done = subprocess.run(
        boot,
        env={**env, "REVIEWQUEUE_AUDIT_CHECKPOINT_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
