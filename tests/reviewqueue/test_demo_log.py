"""What a newcomer sees in the terminal: bin/run's worker and beat, on the
embedded defaults, keep routine sweeps and start-up warnings out of the log."""

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from reviewqueue.models import Action, Status
from tests.dashboard import blocking
from tests.processes import ROOT, database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _celery(kind: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            kind,
            "--loglevel",
            "INFO",
            *(["--concurrency", "1"] if kind == "worker" else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_worker_and_beat_do_their_rounds_without_filling_the_log(agent_client, settings, tmp_path):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "SLA_BLOCKING": timedelta(seconds=3)}
    action = blocking(agent_client)  # escalates after 1.5 s, expires after 3 s: work for the sweeps
    env = {  # the embedded broker (no CELERY_BROKER_URL), as bin/run starts them
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url(),
        "REVIEWQUEUE_VAR_DIR": str(tmp_path),
        "REVIEWQUEUE_ENV": "test",
        "PYTHONUNBUFFERED": "1",
    }
    worker, beat = _celery("worker", env), _celery("beat", env)
    try:
        deadline = time.monotonic() + 40
        while Action.objects.get(pk=action.pk).status == Status.PENDING and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a few more rounds of every sweep
    finally:
        for process in (worker, beat):
            process.terminate()
        logs = {name: process.communicate(timeout=30)[0] for name, process in (("worker", worker), ("beat", beat))}

    assert Action.objects.get(pk=action.pk).status == Status.EXPIRED, logs  # the sweeps ran
    assert "ready." in logs["worker"]
    routine = ("reviewqueue.sla_sweep[", "reviewqueue.outbox_sweep[")  # beat sends these every second
    for name, log in logs.items():
        for noise in ("Sending due task", "superuser privileges", "No hostname", *routine):
            assert noise not in log, f"{name} logged {noise!r}:\n{log}"
    assert "beat: Starting" in logs["beat"]  # start-up stays, and so does other tasks' work
