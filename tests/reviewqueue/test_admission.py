"""What the web server admits: the per-process gate on running requests
(order, limit, long-polls that give their slot back), and long-polls holding
threads up to a budget that leaves the rest to everyone else, over real HTTP
on gunicorn as the run command starts it (config/gunicorn.conf.py)."""

import threading
import time

import httpx
import pytest

from reviewqueue.actions import lifecycle
from reviewqueue.core import admission
from reviewqueue.core.admission import Gate
from reviewqueue.models import Action
from tests.conftest import make_agent, submission
from tests.processes import Gunicorn, database_url, wait_until


def _queued(gate, count):
    assert wait_until(lambda: gate.waiting == count, timeout=5, interval=0.005), f"{gate.waiting} queued, not {count}"


def test_a_freed_slot_goes_to_the_longest_waiter_not_to_a_newcomer():
    gate = Gate(1)
    gate.acquire()
    order = []

    def take(name, hold=None):
        gate.acquire()
        order.append(name)
        if hold:
            hold.wait(5)
        gate.release()

    first_may_go = threading.Event()
    threads = [threading.Thread(target=take, args=("first", first_may_go))]
    threads[0].start()
    _queued(gate, 1)
    for name in ("second", "third"):
        threads.append(threading.Thread(target=take, args=(name,)))
        threads[-1].start()
        _queued(gate, len(threads))

    gate.release()
    newcomer = threading.Thread(target=take, args=("newcomer",))
    newcomer.start()
    _queued(gate, 3)  # the newcomer queued behind second and third, though the slot had just been freed
    first_may_go.set()
    for thread in [*threads, newcomer]:
        thread.join(5)

    assert order == ["first", "second", "third", "newcomer"]


def test_no_more_requests_run_than_the_gate_has_slots():
    gate, lock = Gate(2), threading.Lock()
    running, most, finished = 0, 0, []

    def request(number):
        nonlocal running, most
        gate.acquire()
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        finished.append(number)
        gate.release()

    threads = [threading.Thread(target=request, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert most == 2
    assert sorted(finished) == list(range(24))


def test_a_gate_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        Gate(0)


@pytest.fixture
def one_slot():
    admission.configure(1)
    yield
    admission.configure(0)


def _wsgi_call(app, path):
    status = []
    body = app({"PATH_INFO": path}, lambda s, headers: status.append(s))
    return status[0], b"".join(body)


def _answered_while_one_blocks(app, blocked: threading.Event, release: threading.Event) -> list:
    """Through the gate: what a second request got within 3 s while a first
    (to /block) was blocked in `app`."""
    gated = admission.gated(app)
    first = threading.Thread(target=_wsgi_call, args=(gated, "/block"))
    first.start()
    assert blocked.wait(5)
    answered = []
    second = threading.Thread(target=lambda: answered.append(_wsgi_call(gated, "/submit")))
    second.start()
    second.join(3)
    release.set()
    first.join(5)
    return answered


def test_a_waiting_request_lets_another_run_through_its_single_slot(one_slot):
    woken, parked = threading.Event(), threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/block":
            parked.set()
            with admission.yielded():
                woken.wait(10)
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    answered = _answered_while_one_blocks(app, parked, woken)

    assert answered == [("200 OK", b"/submit")], "the other request waited for the long-poll"


def test_without_a_limit_the_gate_lets_everything_through():
    admission.configure(0)
    busy, done = threading.Event(), threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/block":
            busy.set()
            done.wait(10)  # holding a slot, if there were slots
        return [b"ok"]

    assert _answered_while_one_blocks(app, busy, done) == [("200 OK", b"ok")]


# ------------------------------------------------- long-polls and threads ---

LOOKUP = submission(
    action_type="crm.contacts.lookup",
    tool="hubspot.contacts.search",
    summary="Look up a contact",
    payload={"query": "jane@acme.example"},
)


def _server(tmp_path, *, threads: int, active: int = 2) -> Gunicorn:
    return Gunicorn(
        {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": database_url(),
            "REVIEWQUEUE_VAR_DIR": str(tmp_path),
            "REVIEWQUEUE_ENV": "test",
            "WEB_THREADS": str(threads),
            "WEB_ACTIVE_REQUESTS": str(active),
        }
    )


def _submit_on_a_new_connection(server: Gunicorn, key: str, payload: dict) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        answer = http.post("/api/v1/actions", json=payload)
    return answer, time.monotonic() - started


class Waits:
    """Each agent long-polls its own pending action, on its own connection."""

    def __init__(self, server: Gunicorn, agents: list):
        self.server, self.agents, self.answers = server, agents, {}
        self.pending = [
            _submit_on_a_new_connection(server, a.key, submission(summary=f"Refund ${n}"))[0].json()
            for n, a in enumerate(agents)
        ]
        assert {action["status"] for action in self.pending} == {"pending"}
        self.threads = [
            threading.Thread(target=self._wait, args=(a, p["id"])) for a, p in zip(agents, self.pending, strict=True)
        ]

    def _wait(self, agent, action_id):
        with httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {agent.key}"}, timeout=40
        ) as http:
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


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_agents_parked_in_long_polls_leave_new_connections_answered_at_once(tmp_path, reviewer):
    """Eight threads, one running a request at a time: four agents wait in
    four threads (giving the running slot back), and an agent opening a new
    connection gets its answer at once."""
    server = _server(tmp_path, threads=8, active=1)
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


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
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
