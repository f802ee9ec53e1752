"""The brake and the clock on PostgreSQL, with a real worker and beat on Redis.

1. Kill switch: with 10,000 pending actions in scope, the time from engaging
   the switch to all of them halted (they are halted in the engaging
   transaction, so this is the engage call's wall time).
2. Escalations: with 50,000 actions in flight whose half-SLA escalations fall
   due uniformly over a 15-minute SLA's first half (about 110 a second), how
   late each escalation is recorded against its deadline, over --window
   seconds of real time: p50 and p99. Baseline in the same run: the beat
   interval (1 s), the lateness floor of a once-a-second sweep.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_clock_bench \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/clock_bench.py [--window 60]

The database is dropped and recreated.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=int, default=60, help="seconds of escalations to measure")
    parser.add_argument("--in-flight", type=int, default=50_000)
    parser.add_argument("--halt", type=int, default=10_000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/reviewqueue_clock_bench")
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/7")
    db = urlparse(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {db}"], check=True)
    subprocess.run(["redis-cli", "-u", broker, "flushdb"], check=True, capture_output=True)
    var = tempfile.mkdtemp(prefix="rq-clock-bench-")
    os.environ.update(
        DATABASE_URL=url, CELERY_BROKER_URL=broker, REVIEWQUEUE_VAR_DIR=var, DJANGO_SETTINGS_MODULE="config.settings"
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, cwd=ROOT)

    import django

    django.setup()
    from django.utils import timezone

    from reviewqueue.actions.kill_switches import kill_switch_set
    from reviewqueue.credentials.keys import agent_create
    from reviewqueue.models import Action, AuditEvent

    def pending(agent, count, deadlines):
        now = timezone.now()
        rows = []
        for i in range(count):
            due = deadlines(i)
            rows.append(
                Action(
                    agent=agent,
                    action_type="payments.refund",
                    payload={"amount": i},
                    summary=f"Refund #{i}",
                    status="pending",
                    tier="blocking",
                    risk_score=0.9,
                    risk_reasons=["bench"],
                    model_version="bench",
                    created_at=now,
                    updated_at=now,
                    sla_due_at=due + timedelta(minutes=7, seconds=30),
                    sla_chain=[
                        {"due_at": due.isoformat(), "do": "escalate", "group": "senior_reviewer"},
                        {"due_at": (due + timedelta(minutes=7, seconds=30)).isoformat(), "do": "expire"},
                    ],
                    next_deadline_at=due,
                )
            )
        Action.objects.bulk_create(rows, batch_size=5000)

    far = timezone.now() + timedelta(days=1)
    halting, _ = agent_create(name="halt-me", scopes=["*"], actor="bench")
    pending(halting, args.halt, lambda i: far)
    started = time.perf_counter()
    _, halted = kill_switch_set(scope="agent:halt-me", engaged=True, reason="bench", actor="bench")
    halt_seconds = time.perf_counter() - started
    assert halted == args.halt == Action.objects.filter(agent=halting, status="halted").count()

    flying, _ = agent_create(name="in-flight", scopes=["*"], actor="bench")
    # Deadlines start after the rows are written and the worker and beat are up.
    first_due = timezone.now() + timedelta(seconds=90)
    spread = 450 / args.in_flight  # seconds between deadlines: half of a 15-minute SLA
    pending(flying, args.in_flight, lambda i: first_due + timedelta(seconds=i * spread))

    env = {**os.environ}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            "2",
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "WARNING", "-s", f"{var}/beat"],
        cwd=ROOT,
        env=env,
    )
    try:
        if timezone.now() > first_due - timedelta(seconds=5):
            sys.exit("setting up took longer than the head start; the figures would include the backlog")
        end = first_due + timedelta(seconds=args.window)
        while timezone.now() < end + timedelta(seconds=5):
            time.sleep(1)
    finally:
        for process in (beat, worker):
            process.terminate()
            process.wait()

    lateness = sorted(
        (event.created_at - datetime.fromisoformat(event.data["deadline"])).total_seconds()
        for event in AuditEvent.objects.filter(kind="action.escalated", agent=flying)
        if datetime.fromisoformat(event.data["deadline"]) <= end
    )
    due = Action.objects.filter(agent=flying, next_deadline_at__isnull=False).count()
    print(f"kill switch: {args.halt:,} pending actions halted {halt_seconds * 1000:.0f} ms after engaging")
    print(
        f"escalations: {args.in_flight:,} in flight, {len(lateness):,} due in {args.window} s "
        f"({len(lateness) / args.window:.0f}/s)"
    )
    if lateness:
        p99 = lateness[int(0.99 * (len(lateness) - 1))]
        print(
            f"  lateness p50 {statistics.median(lateness) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {lateness[-1] * 1000:.0f} ms (target p99 ≤ 2000 ms; beat interval 1000 ms)"
        )
    print(f"  actions with a deadline still ahead afterwards: {due:,}")


if __name__ == "__main__":
    main()
