"""Server-side render time of the reviewer's pages with 200,000 actions in PostgreSQL.

Fills a fresh database with a realistic history (COPY: 200k actions over 30
days from 20 agents, about a fifth blocking, a quarter async-review, with a
decision row for every decided one and ~2,000 still pending), then renders
each page in-process through the whole Django stack (middleware, session,
selectors, templates; no network) and prints p50/p95/max per page.
The issue's bar: the Blocking queue page and an action's page ≤ 100 ms p95.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_dash_bench \
        .venv/bin/python bench/dashboard_bench.py [--actions 200000] [--requests 200]

The database named in DATABASE_URL is dropped and recreated.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def golden() -> list[dict]:
    rows = []
    for path in sorted((ROOT / "riskrouter" / "golden").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                body = dict(row["action"])
                body.pop("agent", None)
                rows.append(body)
    return rows


def uuid7_at(moment: datetime, rng: random.Random) -> uuid.UUID:
    """Time-ordered ids like the service's own (reviewqueue.core.ids.uuid7)."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def fill(total: int, seed: int = 7) -> dict:
    """Insert the history with COPY; returns ids worth rendering."""
    from django.contrib.auth.models import Group, User
    from django.db import connection

    from reviewqueue.core.canonical import sha256_hex
    from reviewqueue.credentials.keys import agent_create
    from reviewqueue.models import Action, Decision

    rng = random.Random(seed)
    bodies = golden()
    agents = [agent_create(name=f"agent-{i:02d}", scopes=["*"], actor="bench")[0] for i in range(20)]
    deciders = []
    for name in ("ann", "ben", "cai", "dee"):
        user = User.objects.create_user(name, password="x")  # noqa: S106 (throwaway reviewers in a scratch database)
        user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
        deciders.append(user)
    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    fields = list(Action._meta.concrete_fields)
    columns = [f.column for f in fields]
    decision_rows = []
    pending_ids, decided_ids = [], []

    def value(field, row):
        v = row.get(field.attname, None) if field.attname in row else field.get_default()
        if v is None:
            return None
        if field.get_internal_type() == "JSONField":
            return json.dumps(v)
        return v

    conversation, left = "", 0
    with connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(f"COPY {Action._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
            for i in range(total):
                created = start + timedelta(seconds=30 * 24 * 3600 * i / total)
                body = rng.choice(bodies)
                if left <= 0:
                    conversation, left = f"conv-{i}", rng.randint(1, 6)
                left -= 1
                agent = agents[i % len(agents)]
                roll = rng.random()
                row = {
                    "id": uuid7_at(created, rng),
                    "agent_id": agent.pk,
                    "action_type": body["action_type"],
                    "tool": body.get("tool", ""),
                    "payload": body["payload"],
                    "summary": body["summary"],
                    "rationale": body.get("rationale", ""),
                    "conversation_id": conversation,
                    "cost": {
                        "usd": round(rng.uniform(0.001, 0.03), 4),
                        "input_tokens": rng.randint(300, 5000),
                        "output_tokens": rng.randint(40, 800),
                    },
                    "risk_reasons": ["amount 48,000 ≥ 1,000", f"action type '{body['action_type']}' needs review"],
                    "model_version": "bench",
                    "created_at": created,
                    "updated_at": created,
                    "callback_url": "",
                    "context": None,
                }
                recent = i >= total - 4000  # the last 4,000: still open, mostly
                if roll < 0.55:
                    row.update(
                        tier="auto",
                        status="approved",
                        risk_score=round(rng.uniform(0, 0.35), 3),
                        decided_at=created,
                        decision_by_label="router:auto",
                    )
                elif roll < 0.80:
                    row.update(
                        tier="async_review",
                        status="approved",
                        risk_score=round(rng.uniform(0.35, 0.7), 3),
                        decided_at=created,
                        decision_by_label="router:async_review",
                        sla_due_at=created + timedelta(hours=24),
                    )
                    if recent and rng.random() < 0.9:
                        row["review_state"] = "awaiting_review"
                    else:
                        who = rng.choice(deciders)
                        state = "flagged" if rng.random() < 0.05 else "confirmed"
                        row.update(review_state=state, reviewed_by_id=who.pk, reviewed_at=created + timedelta(hours=3))
                        decision_rows.append(
                            (
                                row["id"],
                                who.pk,
                                state[:-2] if state == "confirmed" else "flag",
                                created + timedelta(hours=3),
                            )
                        )
                else:
                    row.update(
                        tier="blocking",
                        risk_score=round(rng.uniform(0.7, 1.0), 3),
                        sla_due_at=created + timedelta(minutes=15),
                        four_eyes=rng.random() < 0.03,
                    )
                    if recent and rng.random() < 0.9:
                        row.update(status="pending")
                        if rng.random() < 0.05:
                            row["escalated_to"] = "senior_reviewer"
                        pending_ids.append(row["id"])
                    else:
                        who = rng.choice(deciders)
                        approve = rng.random() < 0.8
                        at = created + timedelta(minutes=rng.randint(1, 14))
                        row.update(
                            status="approved" if approve else "rejected",
                            decided_at=at,
                            decided_by_id=who.pk,
                            decision_by_label=who.username,
                            decision_note="" if approve else "not this time",
                        )
                        if approve:
                            row.update(
                                approved_payload=body["payload"], approved_payload_sha256=sha256_hex(body["payload"])
                            )
                        decision_rows.append((row["id"], who.pk, "approve" if approve else "reject", at))
                        decided_ids.append(row["id"])
                copy.write_row([value(f, row) for f in fields])
        with raw.cursor().copy(
            f"COPY {Decision._meta.db_table} (action_id, user_id, kind, note, payload_sha256, created_at) FROM STDIN"
        ) as copy:
            for action_id, user_id, kind, at in decision_rows:
                copy.write_row([action_id, user_id, kind, "", "", at])  # "": as approvals before migration 0013
        cursor.execute(f"ANALYZE {Action._meta.db_table}")
        cursor.execute(f"ANALYZE {Decision._meta.db_table}")
    return {"pending": pending_ids, "decided": decided_ids, "decisions": len(decision_rows)}


def timed(client, url: str, requests: int) -> list[float]:
    for _ in range(5):  # warm caches, templates, the connection
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times


def report(name: str, times: list[float]) -> float:
    ordered = sorted(times)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"  {name:<42} p50 {statistics.median(ordered):6.1f} ms   p95 {p95:6.1f} ms   max {ordered[-1]:6.1f} ms")
    return p95


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="reuse the filled database from an earlier run")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/reviewqueue_dash_bench")
    if not url.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    db = urlparse(url).path.lstrip("/")
    admin = url.rsplit("/", 1)[0] + "/postgres"
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        REVIEWQUEUE_VAR_DIR=os.environ.get("REVIEWQUEUE_VAR_DIR") or tempfile.mkdtemp(prefix="rq-dash-"),
    )
    if not args.keep:
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {db}"], check=True)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from reviewqueue.models import Action

    setup_test_environment()  # ALLOWED_HOSTS gets "testserver"
    if not args.keep:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        filled = fill(args.actions)
        print(
            f"filled {args.actions:,} actions and {filled['decisions']:,} decisions "
            f"in {time.perf_counter() - started:.1f} s"
        )
    reviewer, _ = User.objects.get_or_create(username="bench-reviewer")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    senior, _ = User.objects.get_or_create(username="bench-senior")
    senior.groups.add(*[Group.objects.get_or_create(name=n)[0] for n in ("reviewer", "senior_reviewer")])
    client = Client()
    client.force_login(reviewer)
    total = Action.objects.count()
    pending = Action.objects.filter(status="pending", tier="blocking").count()
    print(f"{total:,} actions in PostgreSQL, {pending:,} pending blocking; {args.requests} renders per page")
    target = Action.objects.filter(status="pending", tier="blocking", escalated_to="").order_by("sla_due_at").first()
    middle = Action.objects.filter(status="pending", tier="blocking").order_by("sla_due_at")[pending // 2]
    decided = Action.objects.filter(tier="blocking", status="approved").order_by("-created_at")[500]
    blocking_p95 = report("Blocking queue page (first page)", timed(client, "/queue/blocking/", args.requests))
    action_p95 = report(
        "Action page (pending, with conversation)", timed(client, f"/actions/{target.pk}/", args.requests)
    )
    print("  also:")
    report("Blocking queue, htmx poll of the rows", timed(client, "/queue/blocking/?x=1", args.requests // 2))
    first = client.get("/queue/blocking/").content.decode()
    cursor = first.split("after=")[1].split('"')[0] if "after=" in first else ""
    report("Blocking queue, next page (keyset)", timed(client, f"/queue/blocking/?after={cursor}", args.requests // 2))
    report(
        "Blocking queue filtered (agent + text)",
        timed(client, "/queue/blocking/?agent=agent-03&q=refund", args.requests // 2),
    )
    report("Async review queue", timed(client, "/queue/async/", args.requests // 2))
    report("Decided tab", timed(client, "/queue/decided/", args.requests // 2))
    report("Action page (middle of the queue)", timed(client, f"/actions/{middle.pk}/", args.requests // 2))
    report("Action page (decided)", timed(client, f"/actions/{decided.pk}/", args.requests // 2))
    client.force_login(senior)
    report("Escalated tab (senior reviewer)", timed(client, "/queue/escalated/", args.requests // 2))
    ok = blocking_p95 <= 100 and action_p95 <= 100
    print(
        f"Blocking queue p95 {blocking_p95:.1f} ms, action page p95 {action_p95:.1f} ms: "
        f"{'within' if ok else 'OVER'} the 100 ms bar"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
