"""A reviewer's claim, decisions, escalation and after-the-fact review."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import riskrouter
from reviewqueue.actions.transitions import PENDING_ONLY, transition
from reviewqueue.audit.trail import audit_append
from reviewqueue.core import roles
from reviewqueue.core.canonical import sha256_hex
from reviewqueue.core.errors import (
    Forbidden,
    IllegalTransition,
    InvalidInput,
)
from reviewqueue.core.roles import Role
from reviewqueue.models import (
    Action,
    Decision,
    DecisionKind,
    ReviewState,
    Status,
    Tier,
)
from reviewqueue.notify import outbox as notifications


class AlreadyDecided(IllegalTransition):
    """Someone else decided first; `action` says who and how."""

    def __init__(self, action: Action):
        self.action = action
        if action.tier == Tier.ASYNC_REVIEW and action.review_state in (ReviewState.CONFIRMED, ReviewState.FLAGGED):
            who, how = (action.reviewed_by.get_username() if action.reviewed_by else "ops"), action.review_state
        else:
            who, how = action.decision_by_label or "someone", action.status
        super().__init__(f"Already decided: {how} by {who}.", details={"status": action.status, "by": who})


def _decider_check(action: Action, user: User) -> None:
    if refusal := roles.decide_refusal(user=user, action=action):
        raise Forbidden(refusal)


def _actor(user: User) -> str:
    return f"user:{user.get_username()}"


def action_claim(*, action: Action, user: User, take_over: bool = False) -> tuple[bool, Action]:
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
        won = (
            Action.objects.open()
            .filter(pk=action.pk)
            .filter(Q() if take_over else free)
            .update(claimed_by=user, claim_expires_at=until)
        )
        if won and previous is not None:
            held_by, held_until = previous
            if held_by != user.pk or held_until is None or held_until <= now:  # renewals are not news
                audit_append(
                    kind="action.claimed",
                    actor=_actor(user),
                    action=action,
                    at=now,
                    data={"until": until.isoformat(), "took_over_from": held_by if take_over else None},
                )
    action.refresh_from_db()
    return bool(won), action


def action_release(*, action: Action, user: User) -> Action:
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
    return riskrouter.route(action.router_input(payload=payload))


def _reasons_after_edit(current: list, route: riskrouter.Route, editor: str) -> list:
    """The action's reasons plus the edit's new ones, marked as the edit's."""
    seen = {str(r).split(": ", 1)[-1] if str(r).startswith("after an edit by ") else str(r) for r in current}
    return [*current, *(f"after an edit by {editor}: {r}" for r in route.reasons if r not in seen)]


def action_decide(
    *,
    action: Action,
    user: User,
    approve: bool,
    note: str = "",
    edited_payload: dict[str, Any] | None = None,
    seen_sha256: str | None = None,
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
    rerouted = (
        _route_edit(action, edited_payload)
        if (approve and edited_payload is not None and edited_payload != action.payload)
        else None
    )
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
            decided_fields: dict[str, Any] = {
                "decided_at": now,
                "decided_by": user,
                "decision_by_label": name,
                "decision_note": note,
            }
            if not approve:
                decided = transition(
                    current,
                    allowed_from=PENDING_ONLY,
                    to=Status.REJECTED,
                    kind="action.rejected",
                    data={"note": note},
                    actor=_actor(user),
                    at=now,
                    **decided_fields,
                )
                Decision.objects.create(action=decided, user=user, kind=DecisionKind.REJECT, note=note, created_at=now)
                return decided
            proposal = proposal_of(
                current,
                list(current.decisions.filter(kind__in=APPROVALS).select_related("user").order_by("created_at", "pk")),
            )
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
                        "tier": str(rerouted.tier),
                        "score": rerouted.score,
                        "reasons": list(rerouted.reasons),
                        "four_eyes": rerouted.four_eyes,
                        "four_eyes_added": needs_four_eyes and not current.four_eyes,
                    }
                    fields = {
                        "four_eyes": needs_four_eyes,
                        "risk_score": max(current.risk_score, rerouted.score),
                        "risk_reasons": _reasons_after_edit(list(current.risk_reasons or []), rerouted, name),
                    }
                    Action.objects.filter(pk=current.pk).update(updated_at=now, **fields)
                    for field, value in fields.items():
                        setattr(current, field, value)
            approvers = proposal.approvers_of(digest)
            approvers[user.pk] = name
            needed = 2 if current.four_eyes else 1
            Decision.objects.create(
                action=current,
                user=user,
                note=note,
                edited_payload=edit,
                payload_sha256=digest,
                kind=DecisionKind.EDIT_APPROVE if edit is not None else DecisionKind.APPROVE,
                created_at=now,
            )
            if len(approvers) < needed:
                audit_append(
                    kind="action.first_approval",
                    actor=_actor(user),
                    action=current,
                    at=now,
                    data={
                        **data,
                        "approvals": len(approvers),
                        "needed": needed,
                        "edited": edit is not None,
                        "payload_sha256": digest,
                    },
                )
                notifications.enqueue(event="action.first_approval", action=current, data={"by": name}, at=now)
                return current
            return transition(
                current,
                allowed_from=PENDING_ONLY,
                to=Status.APPROVED,
                kind="action.approved",
                data={
                    **data,
                    "edited": payload != current.payload,
                    "approved_payload_sha256": digest,
                    "approvers": list(approvers.values()),
                },
                approved_payload=payload,
                approved_payload_sha256=digest,
                actor=_actor(user),
                at=now,
                **decided_fields,
            )
    except IllegalTransition as exc:
        if isinstance(exc, AlreadyDecided):
            raise
        action.refresh_from_db()
        raise AlreadyDecided(action) from None


def action_escalate(*, action: Action, user: User, note: str = "", group: str = Role.SENIOR_REVIEWER) -> Action:
    """Hand an open item to a group (senior reviewers by default); it stays pending.

    The SLA chain is untouched: its deadlines and level keep running, so a
    manual escalation never delays an expiry.
    """
    _decider_check(action, user)
    if refusal := roles.escalation_refusal(user=user, group=group):
        raise Forbidden(refusal)
    note = (note or "").strip()
    now = timezone.now()
    with transaction.atomic():
        # Conditional UPDATE: a decision that landed first wins, and an item
        # already with that group is not escalated twice.
        won = (
            Action.objects.open()
            .filter(pk=action.pk)
            .exclude(escalated_to=group)
            .update(
                escalated_to=group,
                escalated_at=now,
                updated_at=now,
                claimed_by=None,
                claim_expires_at=None,
            )
        )
        if not won:
            action.refresh_from_db()
            if action.escalated_to == group and (
                action.status == Status.PENDING or action.review_state == ReviewState.AWAITING_REVIEW
            ):
                raise IllegalTransition(f"Already escalated to {group}.")
            raise AlreadyDecided(action)
        action.refresh_from_db()
        Decision.objects.create(action=action, user=user, kind=DecisionKind.ESCALATE, note=note, created_at=now)
        data = {"group": group, "note": note, "level": action.escalation_level, "manual": True}
        audit_append(kind="action.escalated", actor=_actor(user), action=action, at=now, data=data)
        notifications.enqueue(event="action.escalated", action=action, data=data, at=now)
    return action


def action_review(*, action: Action, user: User, flag: bool, note: str = "") -> Action:
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
            review_state=state,
            reviewed_by=user,
            reviewed_at=now,
            review_note=note,
            updated_at=now,
            claimed_by=None,
            claim_expires_at=None,
            next_deadline_at=None,
        )
        if not won:
            action.refresh_from_db()
            raise AlreadyDecided(action)
        action.refresh_from_db()
        Decision.objects.create(
            action=action,
            user=user,
            kind=DecisionKind.FLAG if flag else DecisionKind.CONFIRM,
            note=note,
            created_at=now,
        )
        data = {"review_state": state, "note": note}
        audit_append(kind=kind, actor=_actor(user), action=action, at=now, data=data)
        notifications.enqueue(event=kind, action=action, data=data, to_agent=True, at=now)
    return action
