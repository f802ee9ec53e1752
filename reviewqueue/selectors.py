"""Reads with their permission checks built in, so no caller forgets one."""

from __future__ import annotations

import uuid

from .errors import NotFound
from .models import Action, Agent


def action_get_for_agent(*, agent: Agent, action_id: uuid.UUID) -> Action:
    """The agent's own action; another agent's is 404, never 403 (no existence leak)."""
    action = Action.objects.select_related("agent").filter(pk=action_id, agent=agent).first()
    if action is None:
        raise NotFound("No such action.")
    return action
