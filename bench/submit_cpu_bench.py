"""Where a submission's CPU goes, in-process: one request at a time through
Django's test client, and each step of the submit path on its own.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/submit_cpu_bench.py [--n 400]

Uses the database as it is (run bench/submit_bench.py first, or any migrated
database with a trained model) and adds one agent and its actions to it.
Prints CPU (time.process_time) and wall time per call, and the submission's
CPU as a multiple of the floor view's (bench/floor.py), measured in the same
run. Compare figures from one run, not across runs.
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

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import Client  # noqa: E402

import riskrouter  # noqa: E402
from bench.submit_bench import BODY, TABLE_SQL  # noqa: E402
from reviewqueue.actions import lifecycle  # noqa: E402
from reviewqueue.audit import trail as audit
from reviewqueue.controls import killswitch
from reviewqueue.controls.ratelimit import rate_limit_hit  # noqa: E402
from reviewqueue.credentials.keys import authenticate_key  # noqa: E402


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
    call_command("create_agent", f"cpu-bench-{int(time.time())}", "--scope", "*", "--rate-limit", "1000000000",
                 stdout=out)
    key = out.getvalue().split()[-1]
    agent = authenticate_key(key).agent
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = json.dumps(BODY)
    submission = lifecycle.Submission(**BODY)
    action = riskrouter.ActionInput(
        action_type=submission.action_type, payload=submission.payload, summary=submission.summary,
        tool=submission.tool, rationale=submission.rationale, agent=agent.name, context=None,
    )
    decided = riskrouter.route(action)

    def request(path):
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 201, response.content

    def in_transaction(fn):
        def run():
            with transaction.atomic():
                fn()
        return run

    steps = [
        ("floor view (parse + 1 INSERT)", lambda: request("/bench/floor")),
        ("POST /api/v1/actions", lambda: request("/api/v1/actions")),
        ("  authenticate_key", lambda: authenticate_key(key)),
        ("  authenticate_key, remembered", lambda: authenticate_key(key, remembered_ok=True)),
        ("  rate_limit_hit", lambda: rate_limit_hit(limits=[("agent", agent.name, 10**9)])),
        ("  riskrouter.route", lambda: riskrouter.route(action)),
        ("  kill switch (own transaction)",
         in_transaction(lambda: killswitch.engaged_covering(
             killswitch.engaged_switches(), agent_name=agent.name, action_type=submission.action_type))),
        ("  audit append (own transaction)",
         in_transaction(lambda: audit.audit_append(kind="bench.cpu", actor="bench", agent=agent))),
        ("  action + audit (one call)",
         lambda: lifecycle._write_submission(lifecycle._prepare(agent, submission, decided, idempotency=(None, "")))),
    ]
    print(f"submit path, in-process, {args.n} calls each, {connection.vendor}")
    print(f"{'':<36}{'CPU ms':>9}{'wall ms':>9}")
    results = {}
    for name, fn in steps:
        results[name] = measure(fn, args.n)
        print(f"{name:<36}{results[name][0]:>9.2f}{results[name][1]:>9.2f}")
    floor, ours = results[steps[0][0]][0], results[steps[1][0]][0]
    print(f"a submission costs {ours / floor:.1f}x the floor's CPU (0.5 of the floor's throughput needs about 2x)")


if __name__ == "__main__":
    main()
