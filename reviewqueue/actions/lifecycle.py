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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

import riskrouter
from reviewqueue.actions import fastpath, wakeups
from reviewqueue.audit.trail import audit_append, audit_append_many, new_event
from reviewqueue.controls import killswitch, refusals, sla
from reviewqueue.controls.ratelimit import rate_limit_hit
from reviewqueue.core import roles
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.core.errors import (
    Forbidden,
    IdempotencyConflict,
    IllegalTransition,
    InvalidInput,
    KillSwitchEngaged,
    RateLimited,
    ScopeDenied,
)
from reviewqueue.core.roles import Role
from reviewqueue.credentials import keys as credentials
from reviewqueue.credentials.keys import CredentialsChanged
from reviewqueue.models import (
    Action,
    Agent,
    Decision,
    DecisionKind,
    IdempotencyKey,
    KillSwitch,
    Outcome,
    ReviewState,
    Status,
    Tier,
)
from reviewqueue.notify import outbox as notifications

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
    return sha256_hex({
        "action_type": submission.action_type, "payload": submission.payload, "summary": submission.summary,
        "tool": submission.tool, "rationale": submission.rationale, "conversation_id": submission.conversation_id,
        "context": submission.context, "cost": submission.cost, "callback_url": submission.callback_url,
    })


@dataclass(frozen=True)
class Submitted:
    action: Action
    created: bool  # False when an Idempotency-Key replayed an earlier submission


def action_submit(
    *, agent: Agent, submission: Submission, idempotency_key: str | None = None, request_sha256: str = "",
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
    agent: Agent, submission: Submission, idempotency_key: str | None, request_sha256: str,
    key_check: credentials.KeyCheck | None,
) -> Submitted:
    """Route the submission and write it: in one call where the database has
    the submit function (fastpath), which also checks a remembered key; the
    careful way when a kill switch is engaged, the Idempotency-Key was used
    before, or on SQLite."""
    decided = riskrouter.route(
        riskrouter.ActionInput(
            action_type=submission.action_type, payload=submission.payload, summary=submission.summary,
            tool=submission.tool, rationale=submission.rationale, agent=agent.name, context=submission.context,
            # First sightings go up a tier (riskrouter's policy).
            agent_is_new=not _seen(("agent", agent.pk), lambda: Action.objects.filter(agent=agent)),
            action_type_is_new=not _seen(("type", submission.action_type),
                                         lambda: Action.objects.filter(action_type=submission.action_type)),
        )
    )
    write = _prepare(agent, submission, decided, idempotency_key=idempotency_key, request_sha256=request_sha256)
    if fastpath.available():
        outcome = fastpath.submission_write(
            action=write.action, key=write.key, event=new_event(**write.event),
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
        engaged = killswitch.engaged_covering(
            killswitch.engaged_switches(), agent_name=agent.name, action_type=action.action_type, tool=action.tool,
        )
        if engaged:
            refusals.refusal_record(
                kind="action.refused_kill_switch", agent=agent,
                data={"scope": engaged.scope, "action_type": action.action_type, "tool": action.tool,
                      "summary": action.summary, "replay_of": str(action.pk)},
            )
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
    agent: Agent, submission: Submission, decided: riskrouter.Route, *, idempotency_key: str | None,
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
        agent=agent, action_type=submission.action_type, payload=submission.payload, summary=submission.summary,
        tool=submission.tool, rationale=submission.rationale, conversation_id=submission.conversation_id,
        context=submission.context, cost=submission.cost, callback_url=submission.callback_url,
        status=status, tier=tier,
        review_state=ReviewState.AWAITING_REVIEW if tier == Tier.ASYNC_REVIEW else ReviewState.NONE,
        risk_score=decided.score, risk_reasons=list(decided.reasons),
        risk_probabilities=dict(decided.probabilities), model_version=decided.model_version,
        policy_version=decided.policy_version, routing_ms=decided.routing_ms, four_eyes=decided.four_eyes,
        sla_due_at=now + policy[0] if policy else None,
        sla_chain=chain,
        next_deadline_at=datetime.fromisoformat(chain[0]["due_at"]) if chain else None,
        created_at=now, updated_at=now,
        approved_payload=submission.payload if approved else None,
        approved_payload_sha256=payload_sha256 if approved else "",
        decided_at=now if approved else None,
        decision_by_label=f"router:{tier}" if approved else "",
    )
    return _Write(
        action=action,
        key=IdempotencyKey(agent=agent, key=idempotency_key, request_sha256=request_sha256, action=action,
                           created_at=now) if idempotency_key else None,
        event=dict(
            kind="action.submitted", actor=f"agent:{agent.name}", action=action, at=now,
            data={
                "action_type": action.action_type, "status": status, "tier": tier,
                "score": decided.score, "reasons": list(decided.reasons), "model_version": decided.model_version,
                "payload_sha256": payload_sha256,
            },
        ),
    )


def _write_carefully(
    agent: Agent, write: _Write, idempotency_key: str | None, request_sha256: str, submission: Submission,
) -> Submitted:
    """The replay of an Idempotency-Key used before; else, in one transaction,
    the action, its key and its audit event, or only a refusal if a kill
    switch covers it (the switches read under their lock)."""
    if idempotency_key and (replay := _replay(agent, idempotency_key, request_sha256, submission)):
        return replay
    action = write.action
    try:
        with transaction.atomic():
            engaged = killswitch.engaged_covering(
                killswitch.engaged_switches(), agent_name=agent.name, action_type=action.action_type,
                tool=action.tool,
            )
            if engaged:
                refusals.refusal_record(
                    kind="action.refused_kill_switch", agent=agent,
                    data={"scope": engaged.scope, "action_type": action.action_type, "tool": action.tool,
                          "summary": action.summary},
                )
            else:
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


def _transition(
    action: Action, *, allowed_from: frozenset[str], to: str, kind: str, actor: str,
    data: dict[str, Any] | None = None, at: datetime | None = None, **fields: Any,
) -> Action:
    """Move the action to `to` if it is still in one of `allowed_from`, or raise 409."""
    now = at or timezone.now()
    if to != Status.PENDING and action.tier == Tier.BLOCKING:
        fields.setdefault("next_deadline_at", None)  # decided: no more deadlines
        fields.setdefault("claimed_by", None)
        fields.setdefault("claim_expires_at", None)
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
        notifications.enqueue(event=kind, action=action, data=data, to_agent=True, at=now)
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


def actions_halt(*, scope: str, reason: str, actor: str) -> int:
    """Halt every pending action the kill switch scope covers; returns how many.

    In bulk (one UPDATE per chunk, events appended together): engaging the
    switch over thousands of pending actions must take seconds, not minutes.
    Call inside the engaging transaction.
    """
    now = timezone.now()
    ids = _in_scope(Action.objects.filter(status=Status.PENDING), scope)
    halted: list[Action] = []
    for chunk in _chunks(ids, 1000):
        # Conditional on still pending: a decision that won first stands.
        Action.objects.filter(pk__in=chunk, status=Status.PENDING).update(
            status=Status.HALTED, updated_at=now, decided_at=now, decision_by_label="kill_switch",
            decision_note=reason, next_deadline_at=None, claimed_by=None, claim_expires_at=None,
        )
        halted += Action.objects.filter(pk__in=chunk, status=Status.HALTED, updated_at=now).select_related("agent")
    data = {"status": Status.HALTED, "scope": scope, "reason": reason}
    audit_append_many([dict(kind="action.halted", actor=actor, action=a, data=data, at=now) for a in halted])
    notifications.enqueue_many([("action.halted", a, data) for a in halted], to_agent=True, at=now)
    halted_ids = [a.pk for a in halted]
    transaction.on_commit(lambda: [wakeups.notify(pk) for pk in halted_ids])
    return len(halted)


def actions_flag_for_review(*, scope: str, reason: str, actor: str) -> int:
    """Async-tier actions in scope that already went ahead get flagged for a reviewer."""
    now = timezone.now()
    candidates = Action.objects.filter(
        tier=Tier.ASYNC_REVIEW, status=Status.APPROVED, review_state=ReviewState.AWAITING_REVIEW
    )
    flagged: list[Action] = []
    note = f"Flagged by the kill switch ({scope}): {reason}"
    for chunk in _chunks(_in_scope(candidates, scope), 1000):
        Action.objects.filter(pk__in=chunk, review_state=ReviewState.AWAITING_REVIEW).update(
            review_state=ReviewState.FLAGGED, review_note=note, reviewed_at=now, updated_at=now,
        )
        flagged += Action.objects.filter(pk__in=chunk, review_state=ReviewState.FLAGGED, reviewed_at=now)
    data = {"review_state": ReviewState.FLAGGED, "scope": scope, "reason": reason}
    audit_append_many([dict(kind="action.flagged", actor=actor, action=a, data=data, at=now) for a in flagged])
    notifications.enqueue_many([("action.flagged", a, data) for a in flagged], to_agent=True, at=now)
    return len(flagged)


def _in_scope(queryset, scope: str) -> list:
    kind, _, value = scope.partition(":")
    if kind == "agent":
        queryset = queryset.filter(agent__name=value)
    rows = queryset.order_by("created_at").values_list("pk", "agent__name", "action_type", "tool")
    return [pk for pk, agent_name, action_type, tool in rows
            if killswitch.scope_covers(scope, agent_name=agent_name, action_type=action_type, tool=tool)]


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -------------------------------------------------------------- the clock ---

def sla_sweep(*, limit: int = 500) -> int:
    """Apply every escalation step that is due, oldest deadline first; returns how many.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so sweeps running at once
    (two workers, or a catch-up after downtime) split the work instead of
    doing it twice. A claimed row stays locked until its step commits, and
    the step reads the level it advances from under that lock.
    """
    now = timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            due = list(
                Action.objects.select_for_update(skip_locked=True, of=("self",)).select_related("agent")
                .filter(next_deadline_at__lte=now).order_by("next_deadline_at")[:limit]
            )
            _sla_steps(due, now=now)
        total += len(due)
        if not due:  # a step may have made a later one due too: loop until none is
            return total


def _sla_steps(due: list[Action], *, now: datetime) -> None:
    """One step for each claimed action: expiries one by one, escalations and
    alerts in bulk (one UPDATE, one audit append, one outbox write)."""
    moved, events = [], []
    for action in due:
        level = action.escalation_level
        still_open = (
            action.status == Status.PENDING if action.tier == Tier.BLOCKING
            else action.status == Status.APPROVED and action.review_state == ReviewState.AWAITING_REVIEW
        )
        if not still_open or level >= len(action.sla_chain):
            action.next_deadline_at = None
            moved.append(action)
            continue
        step = action.sla_chain[level]
        deadline = datetime.fromisoformat(step["due_at"])
        data = {"deadline": step["due_at"], "level": level + 1, "sla_due_at": action.sla_due_at.isoformat()}
        if step["do"] == sla.EXPIRE:
            _transition(
                action, allowed_from=PENDING_ONLY, to=Status.EXPIRED, kind="action.expired", actor="sla",
                data=data, decided_at=deadline, decision_by_label="sla", escalation_level=level + 1,
                decision_note=f"No decision before the SLA ran out at {step['due_at']}; expired (fail closed).",
            )
            continue
        following = action.sla_chain[level + 1]["due_at"] if level + 1 < len(action.sla_chain) else None
        action.escalation_level, action.updated_at = level + 1, now
        action.next_deadline_at = datetime.fromisoformat(following) if following else None
        if step["do"] == sla.ESCALATE:
            action.escalated_at, action.escalated_to = deadline, step["group"]
            data["group"] = step["group"]
            events.append(("action.escalated", action, data))
        else:
            events.append(("action.overdue_ops_alert", action, data))
        moved.append(action)
    Action.objects.bulk_update(
        moved, ["escalation_level", "updated_at", "next_deadline_at", "escalated_at", "escalated_to"], batch_size=500
    )
    audit_append_many([dict(kind=kind, actor="sla", action=action, data=data) for kind, action, data in events])
    notifications.enqueue_many(events, at=now)


# ------------------------------------------------------------- reviewers ---
# A reviewer's claim, decisions, escalation and after-the-fact review. Each
# decision writes a Decision row and its audit event in one transaction.


class AlreadyDecided(IllegalTransition):
    """Someone else decided first; `action` says who and how."""

    def __init__(self, action: Action):
        self.action = action
        if action.tier == Tier.ASYNC_REVIEW and action.review_state in (ReviewState.CONFIRMED, ReviewState.FLAGGED):
            who, how = (action.reviewed_by.get_username() if action.reviewed_by else "ops"), action.review_state
        else:
            who, how = action.decision_by_label or "someone", action.status
        super().__init__(f"Already decided: {how} by {who}.", details={"status": action.status, "by": who})


def _decider_check(action: Action, user: AbstractBaseUser) -> None:
    if refusal := roles.decide_refusal(user=user, action=action):
        raise Forbidden(refusal)


def _actor(user: AbstractBaseUser) -> str:
    return f"user:{user.get_username()}"


def action_claim(*, action: Action, user: AbstractBaseUser, take_over: bool = False) -> tuple[bool, Action]:
    """Take (or renew) the short lease on an open item; returns (held, action).

    The lease is advisory: it shows others who is working the item, and
    decisions stay race-safe without it. A held lease is only taken over
    when asked for.
    """
    now = timezone.now()
    until = now + settings.REVIEWQUEUE["CLAIM_LEASE"]
    free = Q(claimed_by__isnull=True) | Q(claim_expires_at__lte=now) | Q(claimed_by=user)
    with transaction.atomic():
        previous = Action.objects.filter(pk=action.pk).values_list("claimed_by_id", "claim_expires_at").first()
        # Conditional UPDATE: of two reviewers opening the item at once, one gets it.
        won = Action.objects.open().filter(pk=action.pk).filter(Q() if take_over else free).update(
            claimed_by=user, claim_expires_at=until
        )
        new_holder = won and previous is not None and (
            previous[0] != user.pk or previous[1] is None or previous[1] <= now
        )
        if new_holder:  # renewals are not news
            audit_append(
                kind="action.claimed", actor=_actor(user), action=action, at=now,
                data={"until": until.isoformat(), "took_over_from": previous[0] if take_over else None},
            )
    action.refresh_from_db()
    return bool(won), action


def action_release(*, action: Action, user: AbstractBaseUser) -> Action:
    """Give the lease back (only its holder can)."""
    with transaction.atomic():
        if Action.objects.filter(pk=action.pk, claimed_by=user).update(claimed_by=None, claim_expires_at=None):
            audit_append(kind="action.released", actor=_actor(user), action=action)
    action.refresh_from_db()
    return action


APPROVALS = (DecisionKind.APPROVE, DecisionKind.EDIT_APPROVE)


@dataclass(frozen=True)
class Proposal:
    """What the next approval of a pending action approves, and who approved exactly that.

    The agent's payload until a reviewer edits it, then the latest edit. An
    approval counts only for the payload (SHA-256) it approved, so an edit
    starts the count again with its editor's approval alone.
    """

    payload: dict[str, Any]
    sha256: str
    edited_by: str  # who proposed it; "" while it is the agent's own payload
    approved: dict[str, dict[int, str]]  # payload SHA-256 → {user id: username}, in order

    def approvers_of(self, digest: str) -> dict[int, str]:
        return dict(self.approved.get(digest, {}))

    @property
    def approvers(self) -> list[str]:
        return list(self.approved.get(self.sha256, {}).values())


def proposal_of(action: Action, decisions: list[Decision]) -> Proposal:
    """The current proposal, from the action's decisions in order (with their users)."""
    payload, digest, edited_by = action.payload, "", ""
    approved: dict[str, dict[int, str]] = {}
    for d in decisions:
        if d.kind not in APPROVALS:
            continue
        if d.edited_payload is not None:
            payload, digest, edited_by = d.edited_payload, d.payload_sha256, d.user.get_username()
        digest = digest or sha256_hex(payload)
        # An approval from before hashes were recorded approved what was proposed then.
        approved.setdefault(d.payload_sha256 or digest, {}).setdefault(d.user_id, d.user.get_username())
    return Proposal(payload=payload, sha256=digest or sha256_hex(payload), edited_by=edited_by, approved=approved)


def _route_edit(action: Action, payload: dict[str, Any]) -> riskrouter.Route:
    """A reviewer's edit through the router and the policy, as its submission went."""
    return riskrouter.route(
        riskrouter.ActionInput(
            action_type=action.action_type, payload=payload, summary=action.summary, tool=action.tool,
            rationale=action.rationale, agent=action.agent.name, context=action.context,
        )
    )


def _reasons_after_edit(current: list, route: riskrouter.Route, editor: str) -> list:
    """The action's reasons plus the edit's new ones, marked as the edit's."""
    seen = {str(r).split(": ", 1)[-1] if str(r).startswith("after an edit by ") else str(r) for r in current}
    return [*current, *(f"after an edit by {editor}: {r}" for r in route.reasons if r not in seen)]


def action_decide(
    *, action: Action, user: AbstractBaseUser, approve: bool, note: str = "",
    edited_payload: dict[str, Any] | None = None, seen_sha256: str | None = None,
) -> Action:
    """A reviewer approves (optionally with an edited payload) or rejects a pending blocking action.

    - Separation of duties: an owner of the agent may not decide (403).
    - Reject needs a reason (422).
    - An approval counts only for the exact payload (SHA-256) it approved:
      the agent's, or the latest edit (see `Proposal`). `seen_sha256` is the
      payload the reviewer's page showed; if another reviewer's edit replaced
      it since, the approval is refused rather than counted for the edit.
    - Four eyes: an action marked for it is approved only once two distinct
      reviewers approved the same payload; until then it stays pending. An
      edit is a new payload: its editor's approval counts as one, and another
      reviewer must approve it.
    - An edit goes through the router and the policy again: if they ask for
      four eyes, the action needs them from then on (never fewer), and the
      new reasons are kept on the action and in the audit event.
    - Of two reviewers deciding at once exactly one wins; the other gets
      `AlreadyDecided` naming who decided and how.
    """
    _decider_check(action, user)
    note = (note or "").strip()
    if edited_payload is not None and not isinstance(edited_payload, dict):
        raise InvalidInput("The edited payload must be a JSON object.")
    if not approve and not note:
        raise InvalidInput("A rejection needs a reason.")
    # Routed before the row lock is taken: the router is pure and takes milliseconds.
    rerouted = _route_edit(action, edited_payload) if (
        approve and edited_payload is not None and edited_payload != action.payload
    ) else None
    now = timezone.now()
    name = user.get_username()
    try:
        with transaction.atomic():
            # The row lock serialises deciders of one action, so two "first"
            # four-eyes approvals can't both be recorded as first. (SQLite
            # serialises write transactions already: they start IMMEDIATE.)
            current = Action.objects.select_for_update(of=("self",)).select_related("agent").get(pk=action.pk)
            if current.status != Status.PENDING:
                raise IllegalTransition("decided")
            if current.escalated_to != action.escalated_to:  # escalated since the page was read
                _decider_check(current, user)
            if current.tier != Tier.BLOCKING:
                raise InvalidInput("Only blocking actions are approved or rejected; review this one instead.")
            common = dict(actor=_actor(user), at=now, decided_at=now, decided_by=user,
                          decision_by_label=name, decision_note=note)
            if not approve:
                decided = _transition(current, allowed_from=PENDING_ONLY, to=Status.REJECTED,
                                      kind="action.rejected", data={"note": note}, **common)
                Decision.objects.create(action=decided, user=user, kind=DecisionKind.REJECT, note=note, created_at=now)
                return decided
            proposal = proposal_of(current, list(
                current.decisions.filter(kind__in=APPROVALS).select_related("user").order_by("created_at", "pk")
            ))
            # An edit that matches what is proposed is a plain approval of it.
            edit = edited_payload if edited_payload is not None and edited_payload != proposal.payload else None
            data: dict[str, Any] = {"note": note}
            if edit is None:
                if seen_sha256 and seen_sha256 != proposal.sha256:
                    who = proposal.edited_by or "another reviewer"
                    raise InvalidInput(
                        f"The payload changed since you opened this page: {who} edited it. Your approval was not "
                        "recorded; review the payload now proposed and approve it if it is right.",
                        details={"payload_sha256": proposal.sha256, "edited_by": proposal.edited_by},
                    )
                if user.pk in proposal.approvers_of(proposal.sha256):
                    raise InvalidInput(
                        "You already approved this payload; a second, different reviewer must approve it (four eyes)."
                    )
                payload, digest = proposal.payload, proposal.sha256
            else:
                payload, digest = edit, sha256_hex(edit)
                if rerouted is not None:
                    needs_four_eyes = current.four_eyes or rerouted.four_eyes  # never fewer eyes
                    data["rerouted"] = {
                        "tier": str(rerouted.tier), "score": rerouted.score, "reasons": list(rerouted.reasons),
                        "four_eyes": rerouted.four_eyes, "four_eyes_added": needs_four_eyes and not current.four_eyes,
                    }
                    fields = dict(four_eyes=needs_four_eyes, risk_score=max(current.risk_score, rerouted.score),
                                  risk_reasons=_reasons_after_edit(list(current.risk_reasons or []), rerouted, name))
                    Action.objects.filter(pk=current.pk).update(updated_at=now, **fields)
                    for field, value in fields.items():
                        setattr(current, field, value)
            approvers = proposal.approvers_of(digest)
            approvers[user.pk] = name
            needed = 2 if current.four_eyes else 1
            Decision.objects.create(action=current, user=user, note=note, edited_payload=edit, payload_sha256=digest,
                                    kind=DecisionKind.EDIT_APPROVE if edit is not None else DecisionKind.APPROVE,
                                    created_at=now)
            if len(approvers) < needed:
                audit_append(
                    kind="action.first_approval", actor=_actor(user), action=current, at=now,
                    data={**data, "approvals": len(approvers), "needed": needed, "edited": edit is not None,
                          "payload_sha256": digest},
                )
                notifications.enqueue(event="action.first_approval", action=current, data={"by": name}, at=now)
                return current
            return _transition(
                current, allowed_from=PENDING_ONLY, to=Status.APPROVED, kind="action.approved",
                data={**data, "edited": payload != current.payload, "approved_payload_sha256": digest,
                      "approvers": list(approvers.values())},
                approved_payload=payload, approved_payload_sha256=digest, **common,
            )
    except IllegalTransition as exc:
        if isinstance(exc, AlreadyDecided):
            raise
        action.refresh_from_db()
        raise AlreadyDecided(action) from None


def action_escalate(*, action: Action, user: AbstractBaseUser, note: str = "",
                    group: str = Role.SENIOR_REVIEWER) -> Action:
    """Hand an open item to a group (senior reviewers by default); it stays pending.

    The SLA chain is untouched: its deadlines and level keep running, so a
    manual escalation never delays an expiry.
    """
    _decider_check(action, user)
    note = (note or "").strip()
    now = timezone.now()
    with transaction.atomic():
        # Conditional UPDATE: a decision that landed first wins, and an item
        # already with that group is not escalated twice.
        won = Action.objects.open().filter(pk=action.pk).exclude(escalated_to=group).update(
            escalated_to=group, escalated_at=now, updated_at=now, claimed_by=None, claim_expires_at=None,
        )
        if not won:
            action.refresh_from_db()
            if action.escalated_to == group and (action.status == Status.PENDING or
                                                 action.review_state == ReviewState.AWAITING_REVIEW):
                raise IllegalTransition(f"Already escalated to {group}.")
            raise AlreadyDecided(action)
        action.refresh_from_db()
        Decision.objects.create(action=action, user=user, kind=DecisionKind.ESCALATE, note=note, created_at=now)
        data = {"group": group, "note": note, "level": action.escalation_level, "manual": True}
        audit_append(kind="action.escalated", actor=_actor(user), action=action, at=now, data=data)
        notifications.enqueue(event="action.escalated", action=action, data=data, at=now)
    return action


def action_review(*, action: Action, user: AbstractBaseUser, flag: bool, note: str = "") -> Action:
    """After-the-fact review of an async-tier action: confirm it, or flag it with a reason.

    A flag goes through the same notification hook as every transition, so it
    reaches the agent's webhook and the ops channels.
    """
    _decider_check(action, user)
    note = (note or "").strip()
    if flag and not note:
        raise InvalidInput("A flag needs a reason.")
    if action.tier != Tier.ASYNC_REVIEW:
        raise InvalidInput("Only async-review actions are confirmed or flagged.")
    now = timezone.now()
    state = ReviewState.FLAGGED if flag else ReviewState.CONFIRMED
    kind = "action.flagged" if flag else "action.confirmed"
    with transaction.atomic():
        # Conditional UPDATE: of two reviewers at once, one review counts.
        won = Action.objects.filter(
            pk=action.pk, tier=Tier.ASYNC_REVIEW, review_state=ReviewState.AWAITING_REVIEW
        ).update(
            review_state=state, reviewed_by=user, reviewed_at=now, review_note=note, updated_at=now,
            claimed_by=None, claim_expires_at=None, next_deadline_at=None,
        )
        if not won:
            action.refresh_from_db()
            raise AlreadyDecided(action)
        action.refresh_from_db()
        Decision.objects.create(action=action, user=user, kind=DecisionKind.FLAG if flag else DecisionKind.CONFIRM,
                                note=note, created_at=now)
        data = {"review_state": state, "note": note}
        audit_append(kind=kind, actor=_actor(user), action=action, at=now, data=data)
        notifications.enqueue(event=kind, action=action, data=data, to_agent=True, at=now)
    return action
