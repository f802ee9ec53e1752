"""What the web server admits while agents wait: long-polls hold threads up to
a budget that leaves the rest to everyone else, over real HTTP on gunicorn
as the run command starts it (config/gunicorn.conf.py)."""

import threading
import time

import httpx
import pytest

from reviewqueue.actions import lifecycle
from reviewqueue.models import Action
from tests.conftest import make_agent, submission
from tests.processes import Gunicorn, database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOOKUP = submission(action_type="crm.contacts.lookup", tool="hubspot.contacts.search", summary="Look up a contact",
                    payload={"query": "jane@acme.example"})


def _server(tmp_path, threads: int) -> Gunicorn:
    return Gunicorn({"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path),
                     "REVIEWQUEUE_ENV": "test", "WEB_THREADS": str(threads)})


def _submit_on_a_new_connection(server: Gunicorn, key: str, payload: dict) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        answer = http.post("/api/v1/actions", json=payload)
    return answer, time.monotonic() - started


class Waits:
    """Each agent long-polls its own pending action, on its own connection."""

    def __init__(self, server: Gunicorn, agents: list):
        self.server, self.agents, self.answers = server, agents, {}
        self.pending = [_submit_on_a_new_connection(server, a.key, submission(summary=f"Refund ${n}"))[0].json()
                        for n, a in enumerate(agents)]
        assert {action["status"] for action in self.pending} == {"pending"}
        self.threads = [threading.Thread(target=self._wait, args=(a, p["id"]))
                        for a, p in zip(agents, self.pending)]

    def _wait(self, agent, action_id):
        with httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {agent.key}"},
                          timeout=40) as http:
            self.answers[action_id] = http.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 30})

    def start(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1.5)  # all of them are parked in the server (or refused) by now

    def decide_all(self, reviewer):
        for action in self.pending:
            lifecycle.action_decide(action=Action.objects.get(pk=action["id"]), user=reviewer, approve=True)
        for thread in self.threads:
            thread.join(20)


def test_agents_parked_in_long_polls_leave_new_connections_answered_at_once(tmp_path, reviewer):
    """Eight threads: four are the reserve, four agents wait in the others,
    and an agent opening a new connection gets its answer at once."""
    server = _server(tmp_path, threads=8)
    try:
        waits = Waits(server, [make_agent(f"patient-{n}", rate_limit_per_minute=1000) for n in range(4)])
        waits.start()
        other = make_agent("busy", rate_limit_per_minute=1000)
        answered = [_submit_on_a_new_connection(server, other.key, LOOKUP) for _ in range(5)]
        waits.decide_all(reviewer)
    finally:
        server.stop()

    assert [answer.status_code for answer, _ in answered] == [201] * 5
    slowest = max(seconds for _, seconds in answered)
    assert slowest < 2, f"a submission took {slowest:.1f} s behind four long-polls"
    assert {answer.json()["status"] for answer in waits.answers.values()} == {"approved"}


def test_past_the_servers_budget_a_long_poll_is_refused_and_submissions_still_answer(tmp_path, reviewer):
    """Eight threads, four of them for long-polls: a fifth waiting agent gets
    429 too_many_waits with Retry-After, and new submissions are still served."""
    server = _server(tmp_path, threads=8)
    try:
        waits = Waits(server, [make_agent(f"patient-{n}", rate_limit_per_minute=1000) for n in range(5)])
        waits.start()
        other = make_agent("busy", rate_limit_per_minute=1000)
        answer, seconds = _submit_on_a_new_connection(server, other.key, LOOKUP)
        waits.decide_all(reviewer)
    finally:
        server.stop()

    assert answer.status_code == 201 and seconds < 2
    refused = [a for a in waits.answers.values() if a.status_code == 429]
    assert len(refused) == 1, [a.status_code for a in waits.answers.values()]
    assert refused[0].json()["error"]["code"] == "too_many_waits"
    assert refused[0].headers["Retry-After"] == "1"
    assert sorted(a.json()["status"] for a in waits.answers.values() if a.status_code == 200) == ["approved"] * 4
