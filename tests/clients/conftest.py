"""The real server for the client and adapter tests: `live_server`, an agent
key, and a reviewer deciding through the real decision path."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connections

from tests.conftest import make_agent


@dataclass
class Server:
    url: str
    key: str
    agent: Any

    def client(self, **options):
        from reviewqueue_client import Client

        return Client(self.url, self.key, **options)

    def async_client(self, **options):
        from reviewqueue_client import AsyncClient

        return AsyncClient(self.url, self.key, **options)


@pytest.fixture
def rq(live_server, transactional_db):
    agent = make_agent("agent-under-test", rate_limit_per_minute=100_000)
    return Server(url=live_server.url, key=agent.key, agent=agent.agent)


class Desk:
    """A reviewer at the desk: each order decides the next pending blocking
    action that shows up, with lifecycle.action_decide (what the dashboard calls)."""

    def __init__(self, user):
        self.user = user
        self.decided: list[tuple[str, str]] = []
        self.failures: list[BaseException] = []
        self._orders: queue.Queue = queue.Queue()
        self._done: set = set()
        self._thread: threading.Thread | None = None

    def approve_next(self, edited_payload: dict | None = None) -> None:
        self._order(approve=True, note="", edited_payload=edited_payload)

    def reject_next(self, note: str) -> None:
        self._order(approve=False, note=note, edited_payload=None)

    def _order(self, **order) -> None:
        self._orders.put(order)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True)
            self._thread.start()

    def _work(self) -> None:
        from reviewqueue.actions import lifecycle
        from reviewqueue.models import Action, Status, Tier

        try:
            while True:
                order = self._orders.get()
                if order is None:
                    return
                deadline = time.monotonic() + 30
                while True:
                    action = (
                        Action.objects.filter(status=Status.PENDING, tier=Tier.BLOCKING)
                        .exclude(pk__in=self._done)
                        .select_related("agent")
                        .order_by("created_at")
                        .first()
                    )
                    if action is not None:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError("no pending blocking action showed up within 30 s")
                    time.sleep(0.05)
                self._done.add(action.pk)
                lifecycle.action_decide(action=action, user=self.user, **order)
                self.decided.append((str(action.pk), "approved" if order["approve"] else "rejected"))
        except BaseException as failure:  # reported by join()
            self.failures.append(failure)
        finally:
            connections.close_all()

    def join(self, timeout: float = 30) -> None:
        """Wait until every order so far has been carried out; re-raise what went wrong."""
        if self._thread is not None:
            self._orders.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self.failures:
            raise self.failures[0]


@pytest.fixture
def desk(reviewer):
    desk = Desk(reviewer)
    yield desk
    desk.join()
