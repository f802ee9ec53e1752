"""Long-polls over real HTTP: waiters hold no database connection and wake fast."""

import threading
import time

import httpx
import pytest
from django.db import connection

from reviewqueue.actions import lifecycle, wakeups
from reviewqueue.models import Action
from tests.conftest import make_agent

pytestmark = pytest.mark.django_db(transaction=True)


def _connections_to_this_database():
    """Connections taken and not given back: out of the pool, when there is
    one (the live server's threads share this process's), else sessions."""
    if connection.pool is not None:
        stats = connection.pool.get_stats()
        return stats["pool_size"] - stats["pool_available"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _settled_connections(seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    count = _connections_to_this_database()
    while count and time.monotonic() < deadline:
        time.sleep(0.2)
        count = _connections_to_this_database()
    return count


def _fewest_connections_over(seconds: float) -> int:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(_connections_to_this_database())
        time.sleep(0.1)
    return min(samples)


def _until_parked(count: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while len(wakeups._waiters) < count:
        assert time.monotonic() < deadline, f"only {len(wakeups._waiters)} of {count} waiters parked"
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts sessions in pg_stat_activity; CI runs it")
def test_twenty_waiting_agents_hold_no_database_connections(live_server, reviewer, settings):
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "WAIT_MAX_PER_AGENT": 20}  # one agent key plays twenty
    client = make_agent("waiter", rate_limit_per_minute=1000)
    ids = [client.submit().json()["id"] for _ in range(20)]
    before = _settled_connections()  # a process of an earlier test may still be closing its session
    results = {}

    def wait(action_id):
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            results[action_id] = http.get(
                f"/api/v1/actions/{action_id}/wait",
                params={"timeout": 20},
                headers={"Authorization": f"Bearer {client.key}"},
            ).json()

    threads = [threading.Thread(target=wait, args=(action_id,)) for action_id in ids]
    for thread in threads:
        thread.start()
    _until_parked(len(ids))
    # The watcher opens and closes its session on every poll, and a request
    # thread may still be closing its own: the floor over a second is the count.
    parked = _fewest_connections_over(seconds=1.0)

    started = time.monotonic()
    for action_id in ids:
        lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=True)
    for thread in threads:
        thread.join()
    woken_after = time.monotonic() - started

    assert parked - before <= 2, f"{parked - before} more sessions open while 20 agents wait"  # the watcher
    assert {body["status"] for body in results.values()} == {"approved"}
    assert woken_after < 2


def test_a_decision_in_another_thread_reaches_the_waiting_agent_quickly(live_server, reviewer):
    client = make_agent("waiter", rate_limit_per_minute=1000)
    action_id = client.submit().json()["id"]
    decided_at = {}

    def decide():
        time.sleep(0.5)
        decided_at["t"] = time.monotonic()
        lifecycle.action_decide(action=Action.objects.get(pk=action_id), user=reviewer, approve=True)

    thread = threading.Thread(target=decide)
    thread.start()
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        body = http.get(
            f"/api/v1/actions/{action_id}/wait",
            params={"timeout": 10},
            headers={"Authorization": f"Bearer {client.key}"},
        ).json()
    returned_at = time.monotonic()
    thread.join()

    assert body["status"] == "approved"
    assert returned_at - decided_at["t"] < 0.5
