"""One agent floods the server with long-polls: do others stay fast?

Starts gunicorn exactly as the run command does (default settings: a
worker per core, WEB_THREADS 256 each, WAIT_MAX_PER_AGENT 16) on PostgreSQL
and Redis, then
measures, before and during the flood, another agent's submissions (p50/p99
of sequential POST /api/v1/actions) and a reviewer's Blocking queue page.
The flood is one agent opening 300 long-polls at once on pending actions, as
the attacker did; past its cap each gets 429 too_many_waits at once.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench \
        .venv/bin/python bench/waits_bench.py [--waits 300] [--cap N]

`--cap 1000` shows the server without a useful cap (the attacker's case).
The database named in DATABASE_URL is dropped and recreated.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.submit_bench import PY, ROOT, free_port, fresh_database, sh, user_environment

REFUND = {
    "action_type": "payments.refund",
    "tool": "stripe.refunds.create",
    "payload": {"amount": 4800},
    "summary": "Refund $4,800 to customer 8812",
}
LOOKUP = {
    "action_type": "crm.contacts.lookup",
    "tool": "hubspot.contacts.search",
    "payload": {"query": "jane@acme.example"},
    "summary": "Look up the customer's contact record",
}


def timed(call, count: int) -> dict:
    """p50/p99 in ms of `count` sequential calls, and how many did not answer 2xx."""
    latencies, failures = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            failures += not call().is_success
        except httpx.HTTPError:
            failures += 1
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {"p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1], "failed": failures}


def measure(base: str, other_key: str, reviewer: httpx.Client, count: int) -> dict:
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {other_key}"}) as agent:
        submit = timed(lambda: agent.post("/api/v1/actions", json=LOOKUP), count)
    page = timed(lambda: reviewer.get("/queue/blocking/"), count // 4)
    return {"submit": submit, "page": page}


def login(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, follow_redirects=True)
    form = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert "/accounts/login/" not in str(answer.url), "the reviewer could not sign in"
    return client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--waits", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200, help="submissions measured per phase")
    parser.add_argument("--cap", type=int, help="WAIT_MAX_PER_AGENT for the server (default: the service's)")
    args = parser.parse_args()
    url = fresh_database()
    env = user_environment(
        url, tempfile.mkdtemp(prefix="rq-bench-"), {"REVIEWQUEUE_WAIT_MAX_PER_AGENT": str(args.cap)} if args.cap else {}
    )
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    sh(PY, "manage.py", "train_risk_model", "--if-missing", "--quiet", env=env, stdout=subprocess.DEVNULL)
    keys = {}
    for name in ("greedy", "other"):
        out = sh(
            PY,
            "manage.py",
            "create_agent",
            name,
            "--scope",
            "*",
            "--rate-limit",
            "100000",
            env=env,
            capture_output=True,
            text=True,
        ).stdout
        keys[name] = out.strip().split()[-1]
    sh(
        PY,
        "manage.py",
        "shell",
        "-c",
        "from django.contrib.auth.models import Group, User; "
        "u = User.objects.create_user('rita', password='bench-password-1'); "
        "u.groups.add(Group.objects.get_or_create(name='reviewer')[0])",
        env=env,
    )

    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "-c", "config/gunicorn.conf.py"],
        cwd=ROOT,
        env={**env, "BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                httpx.get(f"{base}/api/v1/openapi.json")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        reviewer = login(base, "rita", "bench-password-1")
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {keys['greedy']}"}) as g:
            pending = [g.post("/api/v1/actions", json=REFUND).json()["id"] for _ in range(args.waits)]
        measure(base, keys["other"], reviewer, 40)  # warm up
        before = measure(base, keys["other"], reviewer, args.requests)

        answers: list[int] = []

        def wait(action_id):
            with httpx.Client(base_url=base, timeout=90, headers={"Authorization": f"Bearer {keys['greedy']}"}) as g:
                try:
                    answers.append(g.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 60}).status_code)
                except httpx.HTTPError:
                    answers.append(0)

        threads = [threading.Thread(target=wait, args=(pk,), daemon=True) for pk in pending]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        answered, last_answer = len(answers), time.monotonic()  # starting 300 threads takes a while
        # Until the refusals are all back: no new answer for 2 s, after the first.
        while (not answers or time.monotonic() - last_answer < 2) and time.monotonic() - started < 30:
            if len(answers) != answered:
                answered, last_answer = len(answers), time.monotonic()
            time.sleep(0.05)
        refused, refused_in = answers.count(429), last_answer - started
        parked = args.waits - len(answers)
        during = measure(base, keys["other"], reviewer, args.requests)
        still_parked = args.waits - len(answers)
    finally:
        server.terminate()
        server.wait()

    print(
        f"{args.waits} long-polls from one agent: {refused} refused (429 too_many_waits) within "
        f"{refused_in:.1f} s, {parked} parked when measuring began, {still_parked} still parked when it ended"
    )
    print(f"{'':48} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7}")
    for label, phase in (("before", before), ("during the flood", during)):
        for what, name in (("submit", "another agent's submissions"), ("page", "reviewer's Blocking queue")):
            figures = phase[what]
            print(f"{name + ', ' + label:48.48} {figures['p50']:8.1f} {figures['p99']:8.1f} {figures['failed']:7d}")
    for what, name in (("submit", "submissions"), ("page", "queue page")):
        print(f"{name}: p99 during / before = {during[what]['p99'] / before[what]['p99']:.2f}")


if __name__ == "__main__":
    main()
