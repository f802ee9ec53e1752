"""The API's shapes (docs/API.md), as the server's OpenAPI document states
them; tests/clients/test_client.py checks the two agree field by field."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from reviewqueue_client._canonical import sha256_hex

Status = Literal["pending", "approved", "rejected", "expired", "cancelled", "halted"]
Tier = Literal["auto", "async_review", "blocking"]
ReviewState = Literal["none", "awaiting_review", "confirmed", "flagged"]
FINAL = frozenset({"approved", "rejected", "expired", "cancelled", "halted"})


class _Answer(BaseModel):
    # A field a newer server adds must not break an older client.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Risk(_Answer):
    score: float
    reasons: list[str]
    model_version: str
    policy_version: str
    probabilities: dict[str, float]


class Decision(_Answer):
    by: str
    note: str


class Outcome(_Answer):
    status: Literal["succeeded", "failed"]
    detail: str
    at: datetime
    duration_ms: int | None = None
    error_kind: str = ""
    attempt: int | None = None


class Action(_Answer):
    """An action as the server states it. `may_execute` is the one field to obey;
    run `executable_payload()`, never the arguments you first proposed."""

    id: str
    action_type: str
    tool: str
    summary: str
    conversation_id: str
    status: Status
    may_execute: bool
    tier: Tier
    risk: Risk
    review_state: ReviewState
    payload: dict[str, Any]
    approved_payload: dict[str, Any] | None
    approved_payload_sha256: str | None
    sla_due_at: datetime | None
    escalation_level: int
    escalated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    decision: Decision | None
    outcome: Outcome | None

    @property
    def is_final(self) -> bool:
        """Decided for good: waiting longer changes nothing."""
        return self.status in FINAL

    @property
    def edited(self) -> bool:
        """A reviewer changed what will run."""
        return self.approved_payload is not None and self.approved_payload != self.payload

    def executable_payload(self) -> dict[str, Any]:
        """What the agent may run: the approved payload (a reviewer's edits
        included), after checking it is exactly what was approved. Raises the
        matching errors.ActionNotApproved when the action may not run."""
        from reviewqueue_client import errors

        if not self.may_execute:
            raise errors.not_approved(self)
        if self.approved_payload is None or self.approved_payload_sha256 != sha256_hex(self.approved_payload):
            raise errors.PayloadMismatch(self)
        return self.approved_payload


class Switch(_Answer):
    scope: str
    engaged: bool
    reason: str
    changed_by: str
    changed_at: datetime


class KillSwitchStatus(_Answer):
    may_submit: bool
    engaged: list[Switch]


class ScopeCheck(_Answer):
    agent: str
    scopes: list[str]
    allowed: list[bool]
