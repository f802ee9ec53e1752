"""A stand-in for reviewqueue in your own tests: no server, decisions by rule.

    from reviewqueue_client.testing import FakeClient, reject

    fake = FakeClient(lambda s: reject("too large") if s["payload"]["amount"] > 1000 else "approve")

    @gate("payments.transfer", client=fake)
    def transfer(to: str, amount: float): ...

`decide` is "approve", "reject", or a function of the submission (the
dict the client would send) returning "approve", "reject", reject(reason)
or edit(payload). `fake.submissions` and `fake.outcomes` record the calls.
FakeAsyncClient is the same for async code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from reviewqueue_client import errors
from reviewqueue_client._canonical import sha256_hex
from reviewqueue_client.models import Action, Decision, KillSwitchStatus, Risk


@dataclass(frozen=True)
class Verdict:
    approve: bool
    reason: str = ""
    payload: dict[str, Any] | None = None


def reject(reason: str = "Rejected by the fake reviewer.") -> Verdict:
    return Verdict(approve=False, reason=reason)


def edit(payload: Mapping[str, Any]) -> Verdict:
    """Approve with a reviewer's edit: the tool must run this payload."""
    return Verdict(approve=True, payload=dict(payload))


Decide = Literal["approve", "reject"] | Callable[[dict[str, Any]], Any]


class FakeClient:
    """Client's methods, answered in memory by `decide`."""

    def __init__(self, decide: Decide = "approve", *, reviewer: str = "fake-reviewer"):
        self.decide, self.reviewer = decide, reviewer
        self.submissions: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []
        self._actions: dict[str, Action] = {}
        self._keys: dict[str, str] = {}

    def _verdict(self, submission: dict[str, Any]) -> Verdict:
        said = self.decide(submission) if callable(self.decide) else self.decide
        if isinstance(said, Verdict):
            return said
        if said in ("approve", "reject"):
            return Verdict(approve=said == "approve", reason="" if said == "approve" else reject().reason)
        raise ValueError(f"decide returned {said!r}: use 'approve', 'reject', reject(reason) or edit(payload)")

    def submit(self, *, idempotency_key: str | None = None, **submission: Any) -> Action:
        if idempotency_key and idempotency_key in self._keys:
            return self._actions[self._keys[idempotency_key]]
        submission["payload"] = dict(submission["payload"])
        self.submissions.append(submission)
        verdict = self._verdict(submission)
        now = datetime.now(UTC)
        approved = verdict.payload if verdict.payload is not None else submission["payload"]
        action = Action(
            id=str(uuid.uuid4()),
            action_type=submission["action_type"],
            tool=submission.get("tool", ""),
            summary=submission["summary"],
            conversation_id=submission.get("conversation_id", ""),
            status="approved" if verdict.approve else "rejected",
            may_execute=verdict.approve,
            tier="blocking",
            risk=Risk(score=0.0, reasons=["fake"], model_version="fake", policy_version="fake", probabilities={}),
            review_state="none",
            payload=submission["payload"],
            approved_payload=approved if verdict.approve else None,
            approved_payload_sha256=sha256_hex(approved) if verdict.approve else None,
            sla_due_at=None,
            escalation_level=0,
            escalated_at=None,
            created_at=now,
            updated_at=now,
            decided_at=now,
            decision=Decision(by=self.reviewer, note=verdict.reason),
            outcome=None,
        )
        self._actions[action.id] = action
        if idempotency_key:
            self._keys[idempotency_key] = action.id
        return action

    def get(self, action_id: str) -> Action:
        try:
            return self._actions[action_id]
        except KeyError:
            raise errors.NotFound(f"No action {action_id}.", status=404) from None

    def wait(self, action_id: str, *, timeout: float | None = None) -> Action:
        return self.get(action_id)

    def submit_and_wait(self, *, wait_timeout: float | None = None, **submission: Any) -> Action:
        return self.submit(**submission)

    def cancel(self, action_id: str) -> Action:
        return self.get(action_id)

    def report_outcome(self, action_id: str, **outcome: Any) -> Action:
        self.outcomes.append({"action_id": action_id, **outcome})
        return self.get(action_id)

    def kill_switch(self) -> KillSwitchStatus:
        return KillSwitchStatus(may_submit=True, engaged=[])

    def close(self) -> None:
        pass


class FakeAsyncClient:
    """FakeClient for async code: the same answers, awaited."""

    def __init__(self, decide: Decide = "approve", *, reviewer: str = "fake-reviewer"):
        self.sync = FakeClient(decide, reviewer=reviewer)

    @property
    def submissions(self) -> list[dict[str, Any]]:
        return self.sync.submissions

    @property
    def outcomes(self) -> list[dict[str, Any]]:
        return self.sync.outcomes

    async def submit(self, **submission: Any) -> Action:
        return self.sync.submit(**submission)

    async def get(self, action_id: str) -> Action:
        return self.sync.get(action_id)

    async def wait(self, action_id: str, *, timeout: float | None = None) -> Action:
        return self.sync.get(action_id)

    async def submit_and_wait(self, *, wait_timeout: float | None = None, **submission: Any) -> Action:
        return self.sync.submit(**submission)

    async def cancel(self, action_id: str) -> Action:
        return self.sync.get(action_id)

    async def report_outcome(self, action_id: str, **outcome: Any) -> Action:
        return self.sync.report_outcome(action_id, **outcome)

    async def kill_switch(self) -> KillSwitchStatus:
        return self.sync.kill_switch()

    async def aclose(self) -> None:
        pass
