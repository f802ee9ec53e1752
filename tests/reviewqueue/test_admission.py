"""The per-process gate on running requests (order, limit, long-polls that
give their slot back) and gunicorn workers sharing connections evenly."""

import http.client
import threading
import time

import httpx
import pytest

from config.workers import may_accept
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


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_agents_waiting_on_decisions_leave_a_one_slot_server_free_to_answer(tmp_path, reviewer):
    """gunicorn with one worker and one running request: five agents long-poll
    their pending actions, and a sixth still gets its answer at once."""
    agent = make_agent("patient", rate_limit_per_minute=1000)
    server = Gunicorn({"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path),
                       "REVIEWQUEUE_ENV": "test", "WEB_ACTIVE_REQUESTS": "1"})
    auth = {"Authorization": f"Bearer {agent.key}"}
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            pending = [http.post("/api/v1/actions", json=submission(summary=f"Refund $4{n}0")).json()
                       for n in range(5)]
        assert {action["status"] for action in pending} == {"pending"}
        results = {}

        def wait(action_id):
            with httpx.Client(base_url=server.url, headers=auth, timeout=40) as http:
                results[action_id] = http.get(f"/api/v1/actions/{action_id}/wait", params={"timeout": 30}).json()

        waiters = [threading.Thread(target=wait, args=(action["id"],)) for action in pending]
        for thread in waiters:
            thread.start()
        time.sleep(1)  # all five are parked in the server by now

        started = time.monotonic()
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as http:
            lookup = http.post("/api/v1/actions", json=submission(
                action_type="crm.contacts.lookup", tool="hubspot.contacts.search", summary="Look up a contact",
                payload={"query": "jane@acme.example"}))
        answered_in = time.monotonic() - started

        for action in pending:
            lifecycle.action_decide(action=Action.objects.get(pk=action["id"]), user=reviewer, approve=True)
        for thread in waiters:
            thread.join(20)
    finally:
        server.stop()

    assert lookup.status_code == 201, lookup.text
    assert answered_in < 3, f"the submission took {answered_in:.1f} s behind five long-polls"
    assert {results[action["id"]]["status"] for action in pending} == {"approved"}


def test_a_long_poll_is_counted_as_parked_while_it_waits(one_slot):
    woken, parked = threading.Event(), threading.Event()

    def app(environ, start_response):
        with admission.yielded():
            parked.set()
            woken.wait(10)
        start_response("200 OK", [])
        return [b""]

    waiter = threading.Thread(target=_wsgi_call, args=(admission.gated(app), "/wait"))
    waiter.start()
    assert parked.wait(5)
    during = admission.parked()
    woken.set()
    waiter.join(5)

    assert (during, admission.parked()) == (1, 0)


def test_a_worker_takes_new_connections_only_while_no_sibling_carries_less():
    assert may_accept(3, [3, 4])
    assert may_accept(0, [])
    assert not may_accept(4, [3, 9])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sixteen_kept_alive_connections_split_eight_and_eight_between_two_workers(tmp_path):
    agent = make_agent("steady", rate_limit_per_minute=1000)
    server = Gunicorn({"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "REVIEWQUEUE_VAR_DIR": str(tmp_path),
                       "REVIEWQUEUE_ENV": "test"}, workers=2)
    connections = []
    try:
        for _ in range(16):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request("GET", "/api/v1/kill-switch", headers={"Authorization": f"Bearer {agent.key}"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            connections.append(connection)
        split = server.connections_per_worker()
    finally:
        for connection in connections:
            connection.close()
        server.stop()

    assert sorted(split.values()) == [8, 8], split
