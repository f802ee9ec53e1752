"""The lifecycle of an action: the only module that changes its status.

Every change is a conditional UPDATE on the status it leaves (so two writers
can't both win), writes its audit event in the same transaction, and wakes
long-polls after commit.

    pending ──approve──▶ approved          auto/async_review start approved
       │  ───reject───▶ rejected           async_review: awaiting_review
       │  ───expire───▶ expired              ──confirm──▶ confirmed
       │  ───cancel───▶ cancelled            ──flag─────▶ flagged
       └──── halt ────▶ halted
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import riskrouter
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from . import killswitch, wakeups
from .audit import audit_append
from .canonical import sha256_hex
from .errors import IdempotencyConflict, IllegalTransition, InvalidInput, KillSwitchEngaged, ScopeDenied
from .models import Action, Agent, IdempotencyKey, Outcome, ReviewState, Status, Tier
from .ratelimit import rate_limit_hit

PENDING_ONLY = frozenset({Status.PENDING})


@dataclass(frozen=True)
class Submission:
    """A validated request body (see api.SubmitIn)."""

    action_type: str
    payload: dict[str, Any]
    summary: str
    tool: str = ""
    rationale: str = ""
    conversation_id: str = ""
    context: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    callback_url: str = ""

    def fingerprint(self) -> str:
        return sha256_hex(self.__dict__)


@dataclass(frozen=True)
class Submitted:
    action: Action
    created: bool  # False when an Idempotency-Key replayed an earlier submission


def action_submit(*, agent: Agent, submission: Submission, idempotency_key: str | None = None) -> Submitted:
    """Decide at once whether the agent may execute, and record the action.

    Order matters: scope (403, audited), idempotent replay (no new counting),
    rate limit (429, nothing written), kill switch (423, audited), then route
    and write.
    """
    if not agent.allows(submission.action_type):
        with transaction.atomic():
            audit_append(
                kind="action.scope_denied", actor=f"agent:{agent.name}", agent=agent,
                data={"action_type": submission.action_type, "scopes": agent.scopes},
            )
        raise ScopeDenied(
            f"Agent '{agent.name}' may not submit '{submission.action_type}'.",
            details={"action_type": submission.action_type, "scopes": agent.scopes},
        )
    fingerprint = submission.fingerprint()
    if idempotency_key and (replay := _replay(agent, idempotency_key, fingerprint)):
        return replay

    limits = [("agent", agent.name, agent.rate_limit_per_minute)]
    if submission.conversation_id:
        limits.append(
            ("conversation", f"{agent.name}:{submission.conversation_id}", agent.conversation_rate_limit_per_minute)
        )
    rate_limit_hit(limits=limits)

    decided = riskrouter.route(
        riskrouter.ActionInput(
            action_type=submission.action_type, payload=submission.payload, summary=submission.summary,
            tool=submission.tool, rationale=submission.rationale, agent=agent.name, context=submission.context,
        )
    )
    try:
        with transaction.atomic():
            if engaged := killswitch.engaged_scope(agent=agent, action_type=submission.action_type):
                audit_append(
                    kind="action.refused_kill_switch", actor=f"agent:{agent.name}", agent=agent,
                    data={"scope": engaged.scope, "action_type": submission.action_type, "summary": submission.summary},
                )
            else:
                action = _create(agent, submission, decided)
                if idempotency_key:
                    IdempotencyKey.objects.create(
                        agent=agent, key=idempotency_key, request_sha256=fingerprint, action=action,
                        created_at=action.created_at,
                    )
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first;
        # ours rolled back whole, so answer as its replay.
        if idempotency_key and (replay := _replay(agent, idempotency_key, fingerprint)):
            return replay
        raise
    if engaged:
        raise KillSwitchEngaged(
            f"The kill switch '{engaged.scope}' is engaged: {engaged.reason}",
            details={"scope": engaged.scope, "reason": engaged.reason},
        )
    return Submitted(action=action, created=True)


def _replay(agent: Agent, key: str, fingerprint: str) -> Submitted | None:
    record = IdempotencyKey.objects.select_related("action").filter(agent=agent, key=key).first()
    if record is None:
        return None
    if record.request_sha256 != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body.",
            details={"action_id": str(record.action_id)},
        )
    return Submitted(action=record.action, created=False)


def _create(agent: Agent, submission: Submission, decided: riskrouter.Route) -> Action:
    now = timezone.now()
    tier = Tier(decided.tier.value)
    status = Status.PENDING if tier == Tier.BLOCKING else Status.APPROVED
    sla = {Tier.BLOCKING: "SLA_BLOCKING", Tier.ASYNC_REVIEW: "SLA_ASYNC_REVIEW"}.get(tier)
    action = Action(
        agent=agent, **submission.__dict__,
        status=status, tier=tier,
        review_state=ReviewState.AWAITING_REVIEW if tier == Tier.ASYNC_REVIEW else ReviewState.NONE,
        risk_score=decided.score, risk_reasons=list(decided.reasons),
        risk_probabilities=dict(decided.probabilities), model_version=decided.model_version,
        policy_version=decided.policy_version, routing_ms=decided.routing_ms, four_eyes=decided.four_eyes,
        sla_due_at=now + settings.REVIEWQUEUE[sla] if sla else None,
        created_at=now, updated_at=now,
    )
    if status == Status.APPROVED:
        action.approved_payload = submission.payload
        action.approved_payload_sha256 = sha256_hex(submission.payload)
        action.decided_at = now
        action.decision_by_label = f"router:{tier}"
    action.save(force_insert=True)
    audit_append(
        kind="action.submitted", actor=f"agent:{agent.name}", action=action, at=now,
        data={
            "action_type": action.action_type, "status": status, "tier": tier,
            "score": decided.score, "reasons": list(decided.reasons), "model_version": decided.model_version,
            "payload_sha256": sha256_hex(submission.payload),
        },
    )
    return action


def _transition(
    action: Action, *, allowed_from: frozenset[str], to: str, kind: str, actor: str,
    data: dict[str, Any] | None = None, at: datetime | None = None, **fields: Any,
) -> Action:
    """Move the action to `to` if it is still in one of `allowed_from`, or raise 409."""
    now = at or timezone.now()
    with transaction.atomic():
        # Conditional UPDATE: of two concurrent deciders, only one matches.
        won = Action.objects.filter(pk=action.pk, status__in=allowed_from).update(
            status=to, updated_at=now, **fields
        )
        if not won:
            current = Action.objects.filter(pk=action.pk).values_list("status", flat=True).first()
            raise IllegalTransition(
                f"The action is {current}; it can't become {to}.", details={"status": current, "requested": to},
            )
        action.refresh_from_db()
        audit_append(kind=kind, actor=actor, action=action, at=now, data={"status": to, **(data or {})})
        transaction.on_commit(lambda: wakeups.notify(action.pk))
    return action


def action_cancel(*, action: Action) -> Action:
    """The agent withdraws an action nobody has decided yet."""
    now = timezone.now()
    return _transition(
        action, allowed_from=PENDING_ONLY, to=Status.CANCELLED, kind="action.cancelled",
        actor=f"agent:{action.agent.name}", at=now, decided_at=now, decision_by_label="agent",
    )


def action_record_outcome(*, action: Action, outcome: str, detail: str) -> Action:
    """The agent reports what happened when it executed; once, and only if it was allowed to."""
    if outcome not in Outcome.values:
        raise InvalidInput(f"outcome must be one of {', '.join(Outcome.values)}")
    now = timezone.now()
    with transaction.atomic():
        won = Action.objects.filter(pk=action.pk, status=Status.APPROVED, outcome="").update(
            outcome=outcome, outcome_detail=detail, outcome_at=now, updated_at=now
        )
        if not won:
            action.refresh_from_db()
            if action.outcome:
                raise IllegalTransition(
                    f"An outcome was already reported ({action.outcome}).", details={"outcome": action.outcome}
                )
            raise IllegalTransition(
                f"The action is {action.status}; only approved actions may report an outcome.",
                details={"status": action.status},
            )
        action.refresh_from_db()
        audit_append(
            kind="action.outcome", actor=f"agent:{action.agent.name}", action=action, at=now,
            data={"outcome": outcome, "detail": detail},
        )
    return action


def action_decide(
    *, action: Action, user: AbstractBaseUser, approve: bool, note: str = "",
    edited_payload: dict[str, Any] | None = None,
) -> Action:
    """A reviewer approves (optionally with an edited payload) or rejects a pending action."""
    if action.agent.owners.filter(pk=user.pk).exists():
        raise IllegalTransition("You own this agent; someone else must decide its actions.")
    now = timezone.now()
    common = dict(
        kind="action.approved" if approve else "action.rejected", actor=f"user:{user.get_username()}", at=now,
        decided_at=now, decided_by=user, decision_by_label=user.get_username(), decision_note=note,
    )
    if not approve:
        if not note.strip():
            raise InvalidInput("A rejection needs a reason.")
        return _transition(action, allowed_from=PENDING_ONLY, to=Status.REJECTED, data={"note": note}, **common)
    payload = action.payload if edited_payload is None else edited_payload
    digest = sha256_hex(payload)
    return _transition(
        action, allowed_from=PENDING_ONLY, to=Status.APPROVED,
        data={"note": note, "edited": edited_payload is not None and edited_payload != action.payload,
              "approved_payload_sha256": digest},
        approved_payload=payload, approved_payload_sha256=digest, **common,
    )


def actions_halt(*, scope: str, reason: str, actor: str) -> int:
    """Halt every pending action the kill switch scope covers; returns how many."""
    halted = 0
    now = timezone.now()
    pending = Action.objects.filter(status=Status.PENDING).select_related("agent").order_by("created_at")
    for action in pending.iterator(chunk_size=500):
        if not killswitch.scope_covers(scope, agent_name=action.agent.name, action_type=action.action_type):
            continue
        try:
            _transition(
                action, allowed_from=PENDING_ONLY, to=Status.HALTED, kind="action.halted", actor=actor, at=now,
                data={"scope": scope, "reason": reason}, decided_at=now, decision_by_label="kill_switch",
                decision_note=reason,
            )
            halted += 1
        except IllegalTransition:  # decided meanwhile; nothing left to halt
            pass
    return halted
