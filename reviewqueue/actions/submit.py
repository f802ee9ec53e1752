"""An agent's submission: rate limits, scopes, the kill switch, routing and the
write (one call on PostgreSQL, see fastpath), or the replay of an Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

import riskrouter
from reviewqueue.actions import fastpath
from reviewqueue.audit.trail import audit_append, new_event
from reviewqueue.controls import killswitch, refusals, sla
from reviewqueue.controls.ratelimit import rate_limit_hit
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.core.errors import (
    IdempotencyConflict,
    KillSwitchEngaged,
    RateLimited,
    ScopeDenied,
)
from reviewqueue.credentials import keys as credentials
from reviewqueue.credentials.keys import CredentialsChanged
from reviewqueue.models import (
    Action,
    Agent,
    IdempotencyKey,
    KillSwitch,
    ReviewState,
    Status,
    Tier,
)


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


def request_fingerprint(sent: dict[str, Any]) -> str:
    """What an Idempotency-Key remembers of its request: the SHA-256 of the
    canonical JSON of the body as the agent sent it. Not of a Submission, so
    that a field added to it (with a default) leaves a retry's fingerprint as
    it was."""
    return sha256_hex(sent)


def _fingerprint_before_0016(submission: Submission) -> str:
    """The fingerprint keys stored before request_fingerprint (migration 0016's
    release) hold: of the submission's fields as they were then. A retry of
    such a key still replays; drop this once REVIEWQUEUE_IDEMPOTENCY_TTL has
    passed since the release."""
    return sha256_hex(
        {
            "action_type": submission.action_type,
            "payload": submission.payload,
            "summary": submission.summary,
            "tool": submission.tool,
            "rationale": submission.rationale,
            "conversation_id": submission.conversation_id,
            "context": submission.context,
            "cost": submission.cost,
            "callback_url": submission.callback_url,
        }
    )


@dataclass(frozen=True)
class Submitted:
    action: Action
    created: bool  # False when an Idempotency-Key replayed an earlier submission


def action_submit(
    *,
    agent: Agent,
    submission: Submission,
    idempotency_key: str | None = None,
    request_sha256: str = "",
    key_check: credentials.KeyCheck | None = None,
) -> Submitted:
    """Decide at once whether the agent may execute, and record the action.

    Order matters: rate limit first (429, nothing written; every answer
    counts, refusals and replays too), scope (403, audited in aggregate),
    then route and write. An Idempotency-Key used before answers as that
    submission (200; 409 if `request_sha256`, see request_fingerprint, differs;
    423 if a kill switch now covers it); a kill switch covering the action
    refuses it (423, audited in aggregate).

    `key_check` holds the agent's key when it came from this process's memory
    (credentials.KeyCheck). The write checks it in its own statement; every
    other answer is given only after the database confirms it (below, the
    one place), with the agent as the database has it now.
    """
    if idempotency_key and not request_sha256:
        raise ValueError("an Idempotency-Key needs its request's fingerprint (request_fingerprint)")
    over_limit = _rate_limit_count(agent, submission)
    if key_check is not None and key_check.pending is not None:
        if over_limit is None and agent.allows(submission.action_type, submission.tool):
            try:
                return _route_and_write(agent, submission, idempotency_key, request_sha256, key_check)
            except CredentialsChanged:
                pass  # revoked, expired or changed since this process read it
        # Anything but that write: told only to a key the database still holds.
        agent = key_check.confirm()
    if over_limit is not None:
        raise over_limit
    if not agent.allows(submission.action_type, submission.tool):
        details = {"action_type": submission.action_type, "tool": submission.tool, "scopes": agent.scopes}
        refusals.refusal_record(kind="action.scope_denied", agent=agent, data=details)
        what = f"'{submission.action_type}'" + (f" with tool '{submission.tool}'" if submission.tool else "")
        raise ScopeDenied(f"Agent '{agent.name}' may not submit {what}.", details=details)
    return _route_and_write(agent, submission, idempotency_key, request_sha256, None)


def _rate_limit_count(agent: Agent, submission: Submission) -> RateLimited | None:
    """Count this request against the agent's limits (and its conversation's):
    the 429 to answer if it is over one, else None. Counted once per request,
    before anything else, so that every answer counts."""
    limits = [("agent", agent.name, agent.rate_limit_per_minute)]
    if submission.conversation_id:
        limits.append(
            ("conversation", f"{agent.name}:{submission.conversation_id}", agent.conversation_rate_limit_per_minute)
        )
    try:
        rate_limit_hit(limits=limits)
    except RateLimited as over:
        return over
    return None


def _route_and_write(
    agent: Agent,
    submission: Submission,
    idempotency_key: str | None,
    request_sha256: str,
    key_check: credentials.KeyCheck | None,
) -> Submitted:
    """Route the submission and write it: in one call where the database has
    the submit function (fastpath), which also checks a remembered key; the
    careful way when a kill switch is engaged, the Idempotency-Key was used
    before, or on SQLite."""
    decided = riskrouter.route(
        riskrouter.ActionInput(
            action_type=submission.action_type,
            payload=submission.payload,
            summary=submission.summary,
            tool=submission.tool,
            rationale=submission.rationale,
            agent=agent.name,
            context=submission.context,
            # First sightings go up a tier (riskrouter's policy).
            agent_is_new=not _seen(("agent", agent.pk), lambda: Action.objects.filter(agent=agent)),
            action_type_is_new=not _seen(
                ("type", submission.action_type), lambda: Action.objects.filter(action_type=submission.action_type)
            ),
        )
    )
    write = _prepare(agent, submission, decided, idempotency_key=idempotency_key, request_sha256=request_sha256)
    if fastpath.available():
        outcome = fastpath.submission_write(
            action=write.action,
            key=write.key,
            event=new_event(**write.event),
            unconfirmed=key_check.pending if key_check else None,
        )  # CredentialsChanged if the remembered key failed its check; any outcome here passed it
        if key_check:
            key_check.confirmed_by_write()
        if outcome is fastpath.Outcome.WRITTEN:
            return Submitted(action=write.action, created=True)
    return _write_carefully(agent, write, idempotency_key, request_sha256, submission)


def _kill_switch_engaged(switch: KillSwitch, **details: Any) -> KillSwitchEngaged:
    return KillSwitchEngaged(
        f"The kill switch '{switch.scope}' is engaged: {switch.reason}",
        details={"scope": switch.scope, "reason": switch.reason, **details},
    )


# Once an agent or an action type has been seen it stays seen, so each
# process asks the database only until it has seen it once.
_SEEN: set[tuple[str, object]] = set()


def _seen(key: tuple[str, object], history: Callable[[], QuerySet]) -> bool:
    """`history` is built only on a miss: even an unevaluated queryset costs CPU."""
    if key in _SEEN:
        return True
    if not history().exists():
        return False
    if len(_SEEN) > 100_000:
        _SEEN.clear()
    _SEEN.add(key)
    return True


def _replay(agent: Agent, key: str, request_sha256: str, submission: Submission) -> Submitted | None:
    """The earlier answer to this Idempotency-Key, unless a kill switch now
    covers it: a replay must never say `may_execute` while a switch is engaged."""
    record = IdempotencyKey.objects.select_related("action").filter(agent=agent, key=key).first()
    if record is None:
        return None
    if record.request_sha256 not in (request_sha256, _fingerprint_before_0016(submission)):
        raise IdempotencyConflict(
            "This Idempotency-Key was already used with a different request body.",
            details={"action_id": str(record.action_id)},
        )
    action = record.action
    with transaction.atomic():
        engaged = _switch_refusal(agent, action, replay_of=str(action.pk))
    if engaged:
        raise _kill_switch_engaged(engaged, action_id=str(action.pk))
    return Submitted(action=action, created=False)


@dataclass
class _Write:
    """A submission ready to write."""

    action: Action
    key: IdempotencyKey | None
    event: dict[str, Any]  # audit_append's arguments for action.submitted


def _prepare(
    agent: Agent,
    submission: Submission,
    decided: riskrouter.Route,
    *,
    idempotency_key: str | None,
    request_sha256: str,
) -> _Write:
    """Everything a submission writes, built before its transaction starts."""
    now = timezone.now()
    tier = Tier(decided.tier.value)
    status = Status.PENDING if tier == Tier.BLOCKING else Status.APPROVED
    policy = sla.policy_for(tier=tier, action_type=submission.action_type)
    chain = sla.chain_resolve(start=now, sla=policy[0], steps=policy[1]) if policy else []
    payload_sha256 = sha256_hex(submission.payload)
    approved = status == Status.APPROVED
    action = Action(
        agent=agent,
        action_type=submission.action_type,
        payload=submission.payload,
        summary=submission.summary,
        tool=submission.tool,
        rationale=submission.rationale,
        conversation_id=submission.conversation_id,
        context=submission.context,
        cost=submission.cost,
        callback_url=submission.callback_url,
        status=status,
        tier=tier,
        review_state=ReviewState.AWAITING_REVIEW if tier == Tier.ASYNC_REVIEW else ReviewState.NONE,
        risk_score=decided.score,
        risk_reasons=list(decided.reasons),
        risk_probabilities=dict(decided.probabilities),
        model_version=decided.model_version,
        policy_version=decided.policy_version,
        routing_ms=decided.routing_ms,
        four_eyes=decided.four_eyes,
        sla_due_at=now + policy[0] if policy else None,
        sla_chain=chain,
        next_deadline_at=datetime.fromisoformat(chain[0]["due_at"]) if chain else None,
        created_at=now,
        updated_at=now,
        approved_payload=submission.payload if approved else None,
        approved_payload_sha256=payload_sha256 if approved else "",
        decided_at=now if approved else None,
        decision_by_label=f"router:{tier}" if approved else "",
    )
    return _Write(
        action=action,
        key=IdempotencyKey(
            agent=agent, key=idempotency_key, request_sha256=request_sha256, action=action, created_at=now
        )
        if idempotency_key
        else None,
        event={
            "kind": "action.submitted",
            "actor": f"agent:{agent.name}",
            "action": action,
            "at": now,
            "data": {
                "action_type": action.action_type,
                "status": status,
                "tier": tier,
                "score": decided.score,
                "reasons": list(decided.reasons),
                "model_version": decided.model_version,
                "payload_sha256": payload_sha256,
            },
        },
    )


def _switch_refusal(agent: Agent, action: Action, **details: str) -> KillSwitch | None:
    """The engaged switch that covers the action, its refusal counted (inside
    the caller's transaction, the switches read under their lock); or None."""
    engaged = killswitch.engaged_covering(
        killswitch.engaged_switches(), agent_name=agent.name, action_type=action.action_type, tool=action.tool
    )
    if engaged:
        refusals.refusal_record(
            kind="action.refused_kill_switch",
            agent=agent,
            data={
                "scope": engaged.scope,
                "action_type": action.action_type,
                "tool": action.tool,
                "summary": action.summary,
                **details,
            },
        )
    return engaged


def _write_carefully(
    agent: Agent,
    write: _Write,
    idempotency_key: str | None,
    request_sha256: str,
    submission: Submission,
) -> Submitted:
    """The replay of an Idempotency-Key used before; else, in one transaction,
    the action, its key and its audit event, or only a refusal if a kill
    switch covers it (the switches read under their lock)."""
    if idempotency_key and (replay := _replay(agent, idempotency_key, request_sha256, submission)):
        return replay
    action = write.action
    try:
        with transaction.atomic():
            engaged = _switch_refusal(agent, action)
            if not engaged:
                action.save(force_insert=True)
                if write.key:
                    write.key.save(force_insert=True)
                audit_append(**write.event)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first;
        # ours rolled back whole, so answer as its replay.
        if idempotency_key and (replay := _replay(agent, idempotency_key, request_sha256, submission)):
            return replay
        raise
    if engaged:
        raise _kill_switch_engaged(engaged)
    return Submitted(action=action, created=True)
