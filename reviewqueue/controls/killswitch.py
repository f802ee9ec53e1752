"""The kill switch: scopes and the check on the submit path.

Engaging and releasing (which halts actions) is actions.kill_switches. The
submit path checks the switches inside its own transaction, under a shared
advisory lock that `kill_switch_set` takes exclusively (PostgreSQL): an engage
waits for in-flight submissions to commit and then halts them, and every
submission after it sees the switch. Nothing is cached, so no stale read can
let an action through; if the state can't be read, the request fails (503).
"""

from __future__ import annotations

import re

from django.db import connection

from reviewqueue.core.errors import InvalidInput
from reviewqueue.core.names import names_touch
from reviewqueue.models import Agent, KillSwitch

LOCK = 0x72715F6B696C6C  # any fixed 64-bit number
SCOPE = re.compile(r"^(global|agent:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}|action_type:[A-Za-z0-9_.:/*?\[\]!-]{1,128})$")


def scope_validate(scope: str) -> str:
    if not isinstance(scope, str) or not SCOPE.match(scope):
        raise InvalidInput(
            "scope must be 'global', 'agent:<name>' or 'action_type:<pattern>'.", details={"scope": scope}
        )
    return scope


def scope_covers(scope: str, *, agent_name: str, action_type: str, tool: str = "") -> bool:
    """An `action_type:` pattern covers an action when it matches its type or
    its tool (what actually runs), whatever their spelling (see names)."""
    kind, _, value = scope.partition(":")
    if kind == "global":
        return True
    if kind == "agent":
        return agent_name == value
    return kind == "action_type" and names_touch(value, action_type, tool)


def covered_ids(actions, scope: str) -> list:
    """The ids of those `actions` (a queryset) that `scope` covers, oldest
    first: what engaging it halts or flags, and what its confirmation counts."""
    kind, _, value = scope.partition(":")
    if kind == "agent":
        actions = actions.filter(agent__name=value)
    rows = actions.order_by("created_at").values_list("pk", "agent__name", "action_type", "tool")
    return [
        pk
        for pk, agent_name, action_type, tool in rows.iterator()
        if scope_covers(scope, agent_name=agent_name, action_type=action_type, tool=tool)
    ]


def engaged_covering(
    switches: list[KillSwitch],
    *,
    agent_name: str,
    action_type: str,
    tool: str = "",
) -> KillSwitch | None:
    """The first of `switches` (from engaged_switches) that covers this submission."""
    for switch in switches:
        if scope_covers(switch.scope, agent_name=agent_name, action_type=action_type, tool=tool):
            return switch
    return None


def engaged_switches() -> list[KillSwitch]:
    """Every engaged switch, read under the shared lock; call inside the
    transaction that writes the submissions it admits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Held until COMMIT; the read below takes its snapshot after it is held.
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LOCK])
    return list(KillSwitch.objects.filter(engaged=True).order_by("scope").only("id", "scope", "reason"))


def kill_switch_status(*, agent: Agent) -> tuple[bool, list[KillSwitch]]:
    """Whether the agent may submit at all, and every engaged switch that concerns it.

    An `action_type:` switch stops only matching types, so it is listed but
    leaves `may_submit` true.
    """
    switches = [
        switch
        for switch in KillSwitch.objects.filter(engaged=True).order_by("scope")
        if switch.scope in ("global", f"agent:{agent.name}") or switch.scope.startswith("action_type:")
    ]
    return not any(not s.scope.startswith("action_type:") for s in switches), switches
