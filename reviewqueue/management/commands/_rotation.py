"""What the two rotation commands share: the agent by name and the grace period."""

from datetime import timedelta

from django.core.management.base import CommandError

from config.env import parse_duration
from reviewqueue.models import Agent


def agent_and_grace(name: str, grace: str | None) -> tuple[Agent, timedelta | None]:
    """The named agent and the parsed --grace, or a CommandError saying what is wrong."""
    agent = Agent.objects.filter(name=name).first()
    if agent is None:
        raise CommandError(f"No agent named {name!r}")
    try:
        return agent, parse_duration(grace) if grace else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
