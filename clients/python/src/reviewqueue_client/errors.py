"""Typed errors: each says what happened and what the agent should do next.

`message_for_model` is a sentence to hand a language model as the tool's
result, so it can adapt instead of retrying blindly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reviewqueue_client.models import Action


class ReviewqueueError(Exception):
    """Base of every error the client raises."""

    code = "error"
    next_step = "Stop and tell a person; do not run the action."

    def __init__(self, message: str, *, status: int | None = None, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details
        if code:
            self.code = code

    @property
    def message_for_model(self) -> str:
        return f"The action was not run: {self.message.rstrip('.')}. {self.next_step}"

    def __str__(self) -> str:
        return f"{self.message} ({self.code}{f', HTTP {self.status}' if self.status else ''}). {self.next_step}"


class ConfigurationError(ReviewqueueError):
    code = "configuration"
    next_step = "Set REVIEWQUEUE_URL and REVIEWQUEUE_API_KEY (or pass url= and api_key=)."


class ServiceUnavailable(ReviewqueueError):
    """reviewqueue could not be reached or kept failing: nothing ran (fail closed)."""

    code = "service_unavailable"
    next_step = "Nothing ran. Retry later with the same idempotency key; do not run the action without approval."


class Unauthenticated(ReviewqueueError):
    code = "unauthorized"
    next_step = "Check the agent key (REVIEWQUEUE_API_KEY): it may be revoked or expired."


class OutOfScope(ReviewqueueError):
    code = "scope_denied"
    next_step = (
        "This agent may not propose this action at all; do not retry it. Ask ops to widen its scopes if it should."
    )


class Forbidden(ReviewqueueError):
    code = "forbidden"
    next_step = "This key may not do this; do not retry."


class NotFound(ReviewqueueError):
    code = "not_found"
    next_step = "The action does not exist for this agent; check its id."


class InvalidRequest(ReviewqueueError):
    code = "validation_error"
    next_step = "Fix the request (see details); retrying it unchanged will fail again."


class IdempotencyConflict(ReviewqueueError):
    code = "idempotency_key_reused"
    next_step = "This idempotency key was used for a different request: use a new key for a new action."


class Conflict(ReviewqueueError):
    code = "illegal_transition"
    next_step = "The action is no longer in a state that allows this (see details)."


class KillSwitchEngaged(ReviewqueueError):
    code = "kill_switch_engaged"
    next_step = "Ops halted this kind of action. Do not retry until they release the kill switch."


class RateLimited(ReviewqueueError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    @property
    def next_step(self) -> str:  # type: ignore[override]
        wait = f"{self.retry_after:g} s" if self.retry_after is not None else "a while"
        return f"Slow down: wait {wait} before proposing more actions."


class PayloadMismatch(ReviewqueueError):
    """The approved payload does not hash to what the server says was approved."""

    code = "payload_mismatch"
    next_step = "Do not run it: what would run is not what was approved. Tell a person."

    def __init__(self, action: Action):
        super().__init__(f"Action {action.id}: the approved payload does not match its SHA-256.")
        self.action = action


class ActionNotApproved(ReviewqueueError):
    """The action may not run (it was not approved, or not yet)."""

    def __init__(self, action: Action, message: str):
        super().__init__(message)
        self.action = action


class ActionRejected(ActionNotApproved):
    code = "rejected"
    next_step = "Do not retry the same action; adapt to the reviewer's reason or ask the user."

    def __init__(self, action: Action):
        self.reason = action.decision.note if action.decision else ""
        self.reviewer = action.decision.by if action.decision else ""
        super().__init__(
            action, f"A reviewer ({self.reviewer or 'unknown'}) rejected it: {self.reason or 'no reason given'}"
        )

    @property
    def message_for_model(self) -> str:
        reason = (self.reason or "none given").rstrip(".")
        return f"Not done: a reviewer rejected this action. Reason: {reason}. {self.next_step}"


class ActionExpired(ActionNotApproved):
    code = "expired"
    next_step = "Nobody decided in time, which counts as a rejection. Ask the user before proposing it again."

    def __init__(self, action: Action):
        super().__init__(action, "No reviewer decided before the deadline; it expired.")


class ActionCancelled(ActionNotApproved):
    code = "cancelled"
    next_step = "It was withdrawn; propose it again only if it is still needed."

    def __init__(self, action: Action):
        super().__init__(action, "The action was cancelled.")


class ActionHalted(ActionNotApproved):
    code = "halted"
    next_step = "Ops engaged a kill switch. Do not retry until they release it."

    def __init__(self, action: Action):
        super().__init__(action, "A kill switch halted the action.")


class StillPending(ActionNotApproved):
    code = "pending"
    next_step = "Wait again later (the same action), or follow it by webhook; do not run it yet."

    def __init__(self, action: Action):
        super().__init__(action, f"Action {action.id} is still waiting for a reviewer.")


def not_approved(action: Action) -> ActionNotApproved:
    """The error for an action that may not run, by its status."""
    return {
        "rejected": ActionRejected,
        "expired": ActionExpired,
        "cancelled": ActionCancelled,
        "halted": ActionHalted,
    }.get(action.status, StillPending)(action)


_BY_CODE: dict[str, type[ReviewqueueError]] = {
    "unauthorized": Unauthenticated,
    "scope_denied": OutOfScope,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "idempotency_key_reused": IdempotencyConflict,
    "illegal_transition": Conflict,
    "kill_switch_engaged": KillSwitchEngaged,
    "rate_limited": RateLimited,
    "too_many_waits": RateLimited,
    "service_unavailable": ServiceUnavailable,
}
_BY_STATUS: dict[int, type[ReviewqueueError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
    423: KillSwitchEngaged,
    429: RateLimited,
}


def from_response(status: int, body: Any, retry_after: float | None) -> ReviewqueueError:
    """The typed error for an error answer ({"error": {"code", "message", "details"}})."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or f"HTTP {status}")
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServiceUnavailable if status >= 500 else ReviewqueueError)
    kwargs: dict[str, Any] = {"status": status, "details": error.get("details"), "code": code or None}
    if kind is RateLimited:
        return RateLimited(message, retry_after=retry_after, **kwargs)
    return kind(message, **kwargs)
