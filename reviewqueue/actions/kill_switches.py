"""Engaging and releasing kill switches: the brake that halts actions.

Which scopes a switch covers and whether one is engaged is controls.killswitch;
halting the pending actions in scope is an action write, so it lives here,
beside the lifecycle that owns every change of an action's status.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from reviewqueue.actions import halt
from reviewqueue.audit.trail import audit_append
from reviewqueue.controls import killswitch
from reviewqueue.core.errors import InvalidInput
from reviewqueue.models import KillSwitch
from reviewqueue.notify import outbox as notifications


def kill_switch_set(*, scope: str, engaged: bool, reason: str, actor: str) -> tuple[KillSwitch, int]:
    """Engage or release one switch; engaging halts every pending action in scope.

    Returns the switch and how many actions were halted.
    """
    killswitch.scope_validate(scope)
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("A reason is required.")
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Exclusive against the submit path's shared lock; see the module docstring.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [killswitch.LOCK])
        switch, _ = KillSwitch.objects.update_or_create(
            scope=scope, defaults={"engaged": engaged, "reason": reason, "changed_by": actor, "changed_at": now}
        )
        audit_append(
            kind="kill_switch.engaged" if engaged else "kill_switch.released",
            actor=actor,
            at=now,
            data={"scope": scope, "reason": reason},
        )
        notifications.enqueue(
            event="kill_switch.engaged" if engaged else "kill_switch.released",
            data={"scope": scope, "reason": reason, "by": actor},
            at=now,
        )
        halted = 0
        if engaged:
            halted = halt.actions_halt(scope=scope, reason=reason, actor=actor)
            halt.actions_flag_for_review(scope=scope, reason=reason, actor=actor)
    return switch, halted
