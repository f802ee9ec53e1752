"""Where a submission's CPU goes, in-process: one request at a time through
Django's test client, and each step of the submit path on its own.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/submit_cpu_bench.py [--n 400]

Uses the database as it is (run bench/submit_bench.py first, or any migrated
database with a trained model) and adds one agent and its actions to it.
Prints CPU (time.process_time) and wall time per call, and the submission's
CPU as a multiple of the floor view's (bench/floor.py), measured in the same
run. Compare figures from one run, not across runs.

It also prints what building the action and its audit event with
Model.__init__ costs, beside the submission: the figure that decides whether
the fast path needs to build them some other way (it did once, bypassing
__init__ as unpickling does; see reviewqueue/actions/fastpath.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import transaction
from django.test import Client

import riskrouter
from bench.submit_bench import BODY, TABLE_SQL
from reviewqueue.actions import fastpath, lifecycle, submit
from reviewqueue.audit import trail as audit
from reviewqueue.controls import killswitch
from reviewqueue.controls.ratelimit import rate_limit_hit
from reviewqueue.credentials.keys import authenticate_key


def measure(fn, n: int) -> tuple[float, float]:
    for _ in range(max(10, n // 10)):
        fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return 1000 * (time.process_time() - cpu) / n, 1000 * (time.perf_counter() - wall) / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(TABLE_SQL)
    out = StringIO()
    call_command(
        "create_agent", f"cpu-bench-{int(time.time())}", "--scope", "*", "--rate-limit", "1000000000", stdout=out
    )
    key = out.getvalue().split()[-1]
    agent = authenticate_key(key).agent
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = json.dumps(BODY)
    submission = lifecycle.Submission(**BODY)
    action = riskrouter.ActionInput(
        action_type=submission.action_type,
        payload=submission.payload,
        summary=submission.summary,
        tool=submission.tool,
        rationale=submission.rationale,
        agent=agent.name,
        context=None,
    )
    decided = riskrouter.route(action)

    def request(path, **headers):
        response = client.post(path, body, content_type="application/json", headers=headers)
        assert response.status_code == 201, response.content

    keys = iter(range(10**9))

    def keyed_request():
        request("/api/v1/actions", **{"Idempotency-Key": f"cpu-bench-{time.time_ns()}-{next(keys)}"})

    def prepare():
        return submit._prepare(agent, submission, decided, idempotency_key=None, request_sha256="")

    def one_call():
        write = prepare()
        fastpath.submission_write(action=write.action, key=None, event=audit.new_event(**write.event), unconfirmed=None)

    def in_transaction(fn):
        def run():
            with transaction.atomic():
                fn()

        return run

    steps = [
        ("floor view (parse + 1 INSERT)", lambda: request("/bench/floor")),
        ("POST /api/v1/actions", lambda: request("/api/v1/actions")),
        ("  with an Idempotency-Key", keyed_request),
        ("  authenticate_key", lambda: authenticate_key(key)),
        ("  authenticate_key, remembered", lambda: authenticate_key(key, remembered_ok=True)),
        ("  rate_limit_hit", lambda: rate_limit_hit(limits=[("agent", agent.name, 10**9)])),
        ("  riskrouter.route", lambda: riskrouter.route(action)),
        (
            "  kill switch (own transaction)",
            in_transaction(
                lambda: killswitch.engaged_covering(
                    killswitch.engaged_switches(), agent_name=agent.name, action_type=submission.action_type
                )
            ),
        ),
        (
            "  audit append (own transaction)",
            in_transaction(lambda: audit.audit_append(kind="bench.cpu", actor="bench", agent=agent)),
        ),
        ("  build action + event (__init__)", lambda: audit.new_event(**prepare().event)),
        *([("  build + write them (one call)", one_call)] if fastpath.available() else []),
    ]
    print(f"submit path, in-process, {args.n} calls each, {connection.vendor}")
    print(f"{'':<36}{'CPU ms':>9}{'wall ms':>9}")
    results = {}
    for name, fn in steps:
        results[name] = measure(fn, args.n)
        print(f"{name:<36}{results[name][0]:>9.2f}{results[name][1]:>9.2f}")
    floor, ours, keyed = (results[name][0] for name, _ in steps[:3])
    print(
        f"a submission costs {ours / floor:.1f}x the floor's CPU, {keyed / floor:.1f}x with an Idempotency-Key"
        " (0.5 of the floor's throughput needs about 2x)"
    )
    built = results["  build action + event (__init__)"][0]
    print(
        f"building the action and its event (SLA policy, Action and AuditEvent via __init__) is {built:.2f} ms,"
        f" {100 * built / ours:.0f}% of a submission's CPU"
    )


if __name__ == "__main__":
    main()
