import os

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

os.environ.setdefault("REVIEWQUEUE_ENV", "test")


# Transactional tests flush every table with TRUNCATE between tests: the audit
# trigger allows that to the tables' owner only, which the test runner is.


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings, tmp_path):
    """Each test's audit trail starts empty, so it gets its own checkpoint file
    (a checkpoint of another test's trail would say this one was rewritten)."""
    settings.REVIEWQUEUE = {**settings.REVIEWQUEUE, "AUDIT_CHECKPOINT_PATH": tmp_path / "audit-checkpoints.jsonl"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit windows in Redis and per-process caches outlive a test's
    transaction; start each test clean."""
    from django.core.cache import cache

    from reviewqueue.actions import submit
    from reviewqueue.controls import sla
    from reviewqueue.credentials import keys as credentials
    from riskrouter import registry

    yield
    cache.clear()
    credentials._memory.clear()
    submit._SEEN.clear()
    sla.policies_invalidate()
    registry.reset()  # a test's policy rules leave with its transaction


class AgentClient:
    """An HTTP client holding one agent's key, speaking JSON."""

    def __init__(self, agent, key):
        self.agent, self.key = agent, key
        self.http = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    def submit(self, body=None, *, idempotency_key=None, **overrides):
        body = {**submission(), **overrides} if body is None else body
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.http.post("/api/v1/actions", body, content_type="application/json", headers=headers)

    def submit_familiar(self, **overrides):
        """Submit after one earlier action of the same type by this agent, so
        the router's first-sighting rule (one tier up) doesn't apply."""
        self.submit(**{**overrides, "summary": "an earlier one", "conversation_id": "warm-up"})
        return self.submit(**overrides)

    def post(self, path, body=None):
        return self.http.post(f"/api/v1{path}", body or {}, content_type="application/json")

    def get(self, path, **params):
        return self.http.get(f"/api/v1{path}", params)


def submission(**overrides):
    return {
        "action_type": "payments.refund",
        "tool": "stripe.refunds.create",
        "payload": {"charge": "ch_123", "amount": 420.0, "currency": "USD"},
        "summary": "Refund $420 to customer 8812 for a duplicate charge",
        "rationale": "Customer showed two identical charges on 2026-11-20.",
        "conversation_id": "conv-7f3a",
        "context": {"user_message": "I was charged twice"},
        "cost": {"input_tokens": 1830, "output_tokens": 212, "usd": 0.0041},
        "callback_url": "https://agent.example/hooks/reviewqueue",
        **overrides,
    }


def make_agent(name="billing-bot", scopes=("*",), **limits):
    from reviewqueue.credentials.keys import agent_create

    agent, key = agent_create(name=name, scopes=list(scopes), actor="test", **limits)
    return AgentClient(agent, key)


@pytest.fixture
def agent_client(db):
    return make_agent()


@pytest.fixture
def other_agent_client(db):
    return make_agent("crm-bot")


def _user(username, *groups, **extra):
    user = User.objects.create_user(username, password="pw-" + username, **extra)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def reviewer(db):
    return _user("rita", "reviewer")


@pytest.fixture
def senior_reviewer(db):
    return _user("sam", "reviewer", "senior_reviewer")


@pytest.fixture
def ops_user(db):
    return _user("olga", "ops")


@pytest.fixture
def outsider(db):
    return _user("otto")


@pytest.fixture
def ops_client(ops_user):
    from reviewqueue.credentials.keys import user_token_issue

    return Client(HTTP_AUTHORIZATION=f"Bearer {user_token_issue(user=ops_user, actor='test')}")


@pytest.fixture
def hook_server():
    from tests.hooks_server import HookServer

    server = HookServer()
    yield server
    server.close()
