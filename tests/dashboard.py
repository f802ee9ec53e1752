"""Helpers for dashboard tests: real submissions through the API, so every
action is routed, audited and shaped exactly as in production."""

import json
from functools import cache
from pathlib import Path

from reviewqueue.models import Action

GOLDEN = Path(__file__).resolve().parent.parent / "riskrouter" / "golden"


@cache
def golden(action_type: str) -> dict:
    """The first golden action of this type, as an API body."""
    for path in sorted(GOLDEN.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["action"]["action_type"] == action_type:
                body = dict(row["action"])
                body.pop("agent", None)
                return body
    raise LookupError(action_type)


def submit(agent_client, **overrides) -> Action:
    response = agent_client.submit(**overrides)
    assert response.status_code == 201, response.content
    return Action.objects.select_related("agent").get(pk=response.json()["id"])


def blocking(agent_client, **overrides) -> Action:
    action = submit(agent_client, **overrides)
    assert action.tier == "blocking" and action.status == "pending", (action.tier, action.status)
    return action


ASYNC_TYPES = ("crm.contact.update", "linkedin.posts.create", "hris.employee.update", "HassTurnOn")


def async_review(agent_client, **overrides) -> Action:
    """A medium-risk action the router sends to after-the-fact review."""
    # The router lifts an agent's first action of a type one tier; the second lands.
    for action_type in [t for t in ASYNC_TYPES for _ in range(2)]:
        response = agent_client.submit({**golden(action_type), **overrides})
        assert response.status_code == 201, response.content
        action = Action.objects.select_related("agent").get(pk=response.json()["id"])
        if action.tier == "async_review":
            assert action.review_state == "awaiting_review"
            return action
    raise AssertionError("no golden action routed to async_review")


def four_eyes(agent_client, **overrides) -> Action:
    overrides = {"tool": "", "payload": {"charge": "ch_9", "amount": 75000.0, "currency": "USD"}, **overrides}
    action = blocking(agent_client, **overrides)
    assert action.four_eyes
    return action
