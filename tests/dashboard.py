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


def async_review(agent_client, **overrides) -> Action:
    """A medium-risk action the router sends to after-the-fact review: chosen
    by an admin's policy rule, not left to what the model happens to decide."""
    from riskrouter import registry
    from riskrouter.models import PolicyRule

    PolicyRule.objects.get_or_create(
        name="test-reviewed-after",
        defaults={
            "kind": "pattern",
            "match": "notes.review.*",
            "tier": "async_review",
            "reason": "notes are reviewed after",
        },
    )
    registry.reset()  # the rule applies now, not at the next refresh (conftest resets after the test)
    body = {
        "action_type": "notes.review.update",
        "tool": "",
        "summary": "Add a note to ticket 7",
        "payload": {"ticket": 7, "note": "called back"},
        **overrides,
    }
    agent_client.submit({**body, "conversation_id": "warm-up"})  # an agent's first of a type goes one tier up
    action = submit(agent_client, **body)
    assert (action.tier, action.review_state) == ("async_review", "awaiting_review"), action.risk_reasons
    return action


def four_eyes(agent_client, **overrides) -> Action:
    overrides = {"tool": "", "payload": {"charge": "ch_9", "amount": 75000.0, "currency": "USD"}, **overrides}
    action = blocking(agent_client, **overrides)
    assert action.four_eyes
    return action
