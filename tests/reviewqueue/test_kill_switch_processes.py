"""The kill switch engaged from another process (the CLI) wakes waiting agents."""

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import make_agent
from tests.processes import ROOT, database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_engaging_from_the_cli_halts_and_wakes_waiting_agents_within_a_second(live_server, tmp_path):
    agent = make_agent("runaway", rate_limit_per_minute=1000, conversation_rate_limit_per_minute=1000)
    ids = [agent.submit().json()["id"] for _ in range(5)]
    woke = {}

    def wait(action_id):
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            body = http.get(
                f"/api/v1/actions/{action_id}/wait",
                params={"timeout": 20},
                headers={"Authorization": f"Bearer {agent.key}"},
            ).json()
        woke[action_id] = (time.monotonic(), body["status"])

    threads = [threading.Thread(target=wait, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    time.sleep(1)

    env = {**os.environ, "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path)}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "kill_switch",
            "engage",
            "--scope",
            "agent:runaway",
            "--reason",
            "looping on refunds",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    engaged_at = time.monotonic()  # the command has committed by the time it exits
    for thread in threads:
        thread.join()

    assert {status for _, status in woke.values()} == {"halted"}
    assert max(at for at, _ in woke.values()) - engaged_at < 1.0
    assert agent.submit().status_code == 423
