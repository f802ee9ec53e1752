"""Fast release: from a reviewer's approval to the agent's long-poll returning.

Starts gunicorn as the run command does (embedded SQLite by default, or
DATABASE_URL), signs a reviewer in, and N times: an agent submits a blocking
action and parks in `wait`, the reviewer POSTs the approval (what the page's
`a` key sends), and we time until the agent's `wait` returns `approved`.
Prints p50/p95/max against the 200 ms target, beside the floor of a bare
round trip (GET /api/v1/kill-switch) measured in the same run.

    .venv/bin/python bench/release_bench.py [--rounds 30]
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="rq-release-")
    env = {**os.environ, "REVIEWQUEUE_VAR_DIR": var}
    py = [sys.executable, "manage.py"]
    subprocess.run([*py, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    key = subprocess.run(
        [
            *py,
            "create_agent",
            "releaser",
            "--scope",
            "*",
            "--rate-limit",
            "100000",
            "--conversation-rate-limit",
            "100000",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    subprocess.run(
        [
            *py,
            "shell",
            "-c",
            "from django.contrib.auth.models import Group, User; "
            "u = User.objects.create_user('bench-reviewer', password='bench-pw-123'); "
            "u.groups.add(Group.objects.get_or_create(name='reviewer')[0])",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "-c", "config/gunicorn.conf.py"],
        cwd=ROOT,
        env={**env, "BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    agent = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    reviewer = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    try:
        for _ in range(100):
            try:
                agent.get("/api/v1/kill-switch")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        page = reviewer.get("/accounts/login/").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
        reviewer.post(
            "/accounts/login/",
            data={"username": "bench-reviewer", "password": "bench-pw-123", "csrfmiddlewaretoken": token},
        )
        csrf = reviewer.cookies["csrftoken"]
        floor, release = [], []
        for i in range(args.rounds + 3):
            started = time.perf_counter()
            agent.get("/api/v1/kill-switch")
            floor.append(time.perf_counter() - started)
            action = agent.post(
                "/api/v1/actions",
                json={
                    "action_type": "payments.refund",
                    "payload": {"charge": f"ch_{i}", "amount": 40},
                    "summary": f"Refund $40 on charge ch_{i}",
                    "conversation_id": f"c{i}",
                },
            ).json()
            assert action["status"] == "pending", action
            answer = {}

            def wait(action_id=action["id"], answer=answer):
                body = agent.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 30}).json()
                answer["at"], answer["status"] = time.perf_counter(), body["status"]

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.3)  # parked
            clicked = time.perf_counter()
            reviewer.post(
                f"/actions/{action['id']}/decide",
                data={"decision": "approve", "note": ""},
                headers={"X-CSRFToken": csrf, "Referer": base + "/"},
            )
            waiter.join()
            assert answer["status"] == "approved", answer
            release.append(answer["at"] - clicked)
        release, floor = sorted(release[3:]), sorted(floor[3:])  # the first rounds warm up
    finally:
        server.terminate()
        server.wait()

    def pct(values, p):
        return values[min(len(values) - 1, int(p * len(values)))] * 1000

    print(
        f"fast release, {args.rounds} approvals, gunicorn gthread, {'PostgreSQL' if 'DATABASE_URL' in os.environ else 'SQLite (embedded)'}"
    )
    print(
        f"  approval POST → agent's wait returns: p50 {statistics.median(release) * 1000:.0f} ms, "
        f"p95 {pct(release, 0.95):.0f} ms, max {release[-1] * 1000:.0f} ms (target ≤ 200 ms)"
    )
    print(
        f"  floor, one bare API round trip:        p50 {statistics.median(floor) * 1000:.0f} ms, "
        f"p95 {pct(floor, 0.95):.0f} ms"
    )


if __name__ == "__main__":
    main()
