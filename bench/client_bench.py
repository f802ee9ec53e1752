"""What the Python client adds to a submission, against the server as a user runs it.

Starts gunicorn as bench/submit_bench.py does (the README's settings for
PostgreSQL and Redis, a trained model) and, on one kept-alive connection,
one call at a time, alternating in rounds:

1. a bare httpx POST /api/v1/actions with an Idempotency-Key (the floor);
2. Client.submit with the same body (pydantic model, key, retry loop);
3. a @gate-decorated tool the router lets through at once: submit, run
   (the tool itself does nothing), report the outcome; against the tool
   called bare, what the gate adds to one tool call.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/client_bench.py [--calls 500] [--rounds 3]

Target (issue 13): the client's overhead per submit under 1 ms at p50.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reviewqueue_client import Client, gate

from bench.submit_bench import BODY, PY, Server, create_agents, fresh_database, sh, user_environment


def timed(fn, calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = fresh_database()
    env = user_environment(url, tempfile.mkdtemp(prefix="rq-client-bench-"), {})
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    sh(PY, "manage.py", "train_risk_model", "--if-missing", "--quiet", env=env)
    key, _ = create_agents(env, 0)
    server = Server(env)
    body = {k: v for k, v in BODY.items() if k != "callback_url"}  # no webhook deliveries to queue
    try:
        bare = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        client = Client(server.base, key)

        def bare_submit():
            answer = bare.post("/api/v1/actions", json=body, headers={"Idempotency-Key": f"rq-{uuid.uuid4()}"})
            assert answer.status_code == 201, answer.text
            answer.json()

        def client_submit():
            assert client.submit(**body).may_execute

        def lookup(query: str, limit: int, fields: list[str]) -> str:
            return "found"

        gated = gate(body["action_type"], client=client, tool=body["tool"], summary=body["summary"])(lookup)

        def gated_call():
            assert gated(**body["payload"]) == "found"

        for fn in (bare_submit, client_submit, gated_call):  # warm up each path
            timed(fn, 50)
        runs: dict[str, list[float]] = {"bare": [], "client": [], "gated": []}
        for _ in range(args.rounds):
            runs["bare"] += timed(bare_submit, args.calls)
            runs["client"] += timed(client_submit, args.calls)
            runs["gated"] += timed(gated_call, args.calls)
        bare_tool = timed(lambda: lookup(**body["payload"]), args.calls)
    finally:
        server.stop()

    print(f"one agent, one call at a time, {args.rounds} rounds of {args.calls} calls each, PostgreSQL and Redis")
    print(f"  {'':<44}{'p50 ms':>8}{'p99 ms':>8}")
    for name, label in (
        ("bare", "bare httpx POST /api/v1/actions (with a key)"),
        ("client", "Client.submit"),
        ("gated", "@gate tool, routed auto (submit+run+outcome)"),
    ):
        print(f"  {label:<44}{statistics.median(runs[name]):>8.2f}{p(runs[name], 0.99):>8.2f}")
    overhead = statistics.median(runs["client"]) - statistics.median(runs["bare"])
    added = statistics.median(runs["gated"]) - statistics.median(bare_tool)
    print(
        f"  the client's overhead per submit, p50: {overhead:+.2f} ms (target under 1 ms: {'met' if overhead < 1 else 'MISSED'})"
    )
    print(f"  what @gate adds to an auto-approved tool call, p50: {added:.2f} ms (two round trips: submit and outcome)")


if __name__ == "__main__":
    main()
