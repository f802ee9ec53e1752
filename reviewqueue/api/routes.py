"""The agent and ops API (API.md): parse, call one service, serialize."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from reviewqueue.actions import kill_switches, lifecycle, wakeups
from reviewqueue.controls import killswitch, ratelimit
from reviewqueue.core import netguard, roles
from reviewqueue.core.errors import (
    Forbidden,
    InvalidInput,
    RateLimited,
    ServiceError,
    Unauthenticated,
)
from reviewqueue.core.jsonbody import StrictJsonParser, json_response
from reviewqueue.core.middleware import error_response
from reviewqueue.credentials.keys import KeyCheck, Principal, authenticate_key, principal_reread
from reviewqueue.models import KillSwitch
from reviewqueue.models.json import action_json
from reviewqueue.queries import selectors

ACTION_TYPE = r"^[A-Za-z][A-Za-z0-9_.:-]{0,127}$"
# ASCII only, so a look-alike letter can't slip a tool past scopes and kill switches.
TOOL = r"^(?:[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,199})?$"
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class AgentKey(HttpBearer):
    """An agent's key; a user token here is authenticated but not allowed.

    `remembered_ok` for the submit endpoint: its key may come from this
    process's memory (credentials.authenticate_key), held in
    `request.key_check` until the database confirms it. The submit write
    checks it in its own statement; every other answer confirms it first:
    the service before answering itself, and `_service_error` before any
    error answer (a body or header the API refuses before the service runs)."""

    def __init__(self, *, remembered_ok: bool = False):
        super().__init__()
        self.remembered_ok = remembered_ok

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = authenticate_key(token, remembered_ok=self.remembered_ok)
        if principal and principal.user:
            raise Forbidden("This endpoint takes an agent key, not a user token.")
        if principal and principal.remembered:
            request.key_check = KeyCheck(principal)  # type: ignore[attr-defined]
        return principal


class OpsToken(HttpBearer):
    """A user token of someone who may operate (core.roles: ops, admins)."""

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        principal = authenticate_key(token)
        if principal is None:
            return None
        user = principal.user
        if user is None or not roles.may_operate(user):
            raise Forbidden("Only ops (or admins) may use the ops API.")
        return principal


class _SentJsonParser(StrictJsonParser):
    """Also keeps the body as the client sent it (`request.sent_json`): an
    Idempotency-Key's fingerprint covers that, not how the service reads it."""

    def parse_body(self, request):
        request.sent_json = body = super().parse_body(request)
        return body


api = NinjaAPI(
    title="reviewqueue",
    version="1",
    description="Approval service between AI agents and the real world. The contract: docs/API.md in the repository.",
    urls_namespace="api-v1",
    parser=_SentJsonParser(),
)


@api.exception_handler(ServiceError)
def _service_error(request, exc: ServiceError):
    """Every error answer of the API passes here (the handlers below too)."""
    if (check := getattr(request, "key_check", None)) is not None and check.pending is not None:
        try:  # an error is told only to a key the database still holds (see AgentKey)
            check.confirm()
        except Unauthenticated as gone:
            exc = gone
    if exc.status in (400, 413, 422) and (over := _bad_input_counted(request)):
        exc = over
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _bad_input_counted(request) -> RateLimited | None:
    """An agent's bad input counts against its rate limit like every other
    answer (a flood of malformed requests is not free); past the limit the
    answer is the 429."""
    principal = getattr(request, "auth", None)
    if not isinstance(principal, Principal) or principal.agent is None:
        return None
    try:
        ratelimit.rate_limit_hit(limits=[("agent", principal.agent.name, principal.agent.rate_limit_per_minute)])
    except RateLimited as over:
        return over
    return None


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if isinstance(exc.__cause__, ServiceError):  # raised by our body parser, wrapped by ninja
        return _service_error(request, exc.__cause__)
    if isinstance(exc, AuthenticationError):
        return _service_error(request, Unauthenticated())
    return error_response(exc.status_code, "bad_request", str(exc.message))


@api.exception_handler(NinjaValidationError)
def _validation_error(request, exc: NinjaValidationError):
    details = [
        {"location": ".".join(str(part) for part in _location(error.get("loc", ()))), "message": error.get("msg", "")}
        for error in exc.errors
    ]
    first = details[0] if details else {"location": "", "message": "invalid"}
    return _service_error(
        request, InvalidInput(f"{first['location']}: {first['message']}".strip(": "), details=details)
    )


def _location(loc) -> tuple:
    """ninja nests the body under its parameter name: ("body", "body", "x") → ("body", "x")."""
    loc = tuple(loc)
    return loc[1:] if len(loc) >= 2 and loc[0] in ("body", "query") and loc[1] == loc[0] else loc


# ---------------------------------------------------------------- schemas ---


# Request bodies are plain pydantic models: a ninja Schema with extra="forbid"
# validates every body twice (once more through its ORM getter).
class Cost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_tokens: Annotated[StrictInt, Field(ge=0, le=10**12)] | None = None
    output_tokens: Annotated[StrictInt, Field(ge=0, le=10**12)] | None = None
    usd: Annotated[StrictFloat | StrictInt, Field(ge=0, le=10**9)] | None = None


class SubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action_type: Annotated[StrictStr, Field(pattern=ACTION_TYPE, examples=["payments.refund"])]
    payload: dict[str, Any]
    summary: Annotated[StrictStr, Field(min_length=1)]
    tool: Annotated[StrictStr, Field(pattern=TOOL, examples=["stripe.refunds.create"])] = ""
    rationale: Annotated[StrictStr, Field(max_length=10_000)] = ""
    conversation_id: Annotated[StrictStr, Field(max_length=200)] = ""
    context: dict[str, Any] | None = None
    cost: Cost | None = None
    callback_url: Annotated[StrictStr, Field(max_length=2048)] = ""

    @field_validator("summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        limit = settings.REVIEWQUEUE["MAX_SUMMARY_CHARS"]
        if len(value) > limit:
            raise ValueError(f"at most {limit:,} characters (got {len(value):,})")
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str) -> str:
        if value and (verdict := _callback_url_verdict(value, netguard.allow_list())):
            reason, message = verdict
            if reason == "invalid_url":
                raise ValueError(message)
            # Not a ValueError: pydantic lets it through to the API's handler (422 unsafe_url).
            raise UnsafeCallbackURL(
                f"callback_url {message}", details={"location": "body.callback_url", "reason": reason}
            )
        return value


class UnsafeCallbackURL(InvalidInput):
    code = "unsafe_url"


@lru_cache(maxsize=1024)
def _callback_url_verdict(value: str, allow: netguard.AllowList) -> tuple[str, str] | None:
    """None for a URL the service may call back, else (reason, message).
    An agent sends the same callback URL every time, and the checks (Django's
    validator is a long regex) need no DNS: remember their verdicts. The
    delivery checks the address it connects to again (netguard.post)."""
    try:
        netguard.check_url(value, allow)
    except netguard.UnsafeURL as exc:
        return exc.reason, str(exc)
    try:
        URLValidator(schemes=["http", "https"])(value)
    except DjangoValidationError:
        return "invalid_url", "must be an http or https URL"
    return None


class Risk(Schema):
    score: float
    reasons: list[str]
    model_version: str
    policy_version: str
    probabilities: dict[str, float]


class Decision(Schema):
    by: str
    note: str


class OutcomeOut(Schema):
    status: Literal["succeeded", "failed"]
    detail: str
    at: datetime
    duration_ms: int | None
    error_kind: str
    attempt: int | None


class ActionOut(Schema):
    id: uuid.UUID
    action_type: str
    tool: str
    summary: str
    conversation_id: str
    status: Literal["pending", "approved", "rejected", "expired", "cancelled", "halted"]
    may_execute: bool
    tier: Literal["auto", "async_review", "blocking"]
    risk: Risk
    review_state: Literal["none", "awaiting_review", "confirmed", "flagged"]
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
    outcome: OutcomeOut | None


class ErrorBody(Schema):
    code: str
    message: str
    details: Any = None


class ErrorOut(Schema):
    error: ErrorBody


class OutcomeIn(Schema):
    model_config = ConfigDict(extra="forbid")
    status: Literal["succeeded", "failed"]
    detail: Annotated[StrictStr, Field(max_length=10_000)] = ""
    duration_ms: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None = None
    error_kind: Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["timeout"])] = ""
    attempt: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None


class SwitchOut(Schema):
    scope: str
    engaged: bool
    reason: str
    changed_by: str
    changed_at: datetime


class AgentKillSwitchOut(Schema):
    may_submit: bool
    engaged: list[SwitchOut]


class SwitchIn(Schema):
    model_config = ConfigDict(extra="forbid")
    scope: Annotated[
        StrictStr, Field(max_length=200, examples=["global", "agent:billing-bot", "action_type:payments.*"])
    ]
    engaged: StrictBool
    reason: Annotated[StrictStr, Field(min_length=1, max_length=2000)]


class SwitchSetOut(SwitchOut):
    halted: int


ERRORS = dict.fromkeys((400, 401, 403, 404, 409, 413, 422, 423, 429, 503), ErrorOut)


def _action_response(action, *, status: int = 200) -> HttpResponse:
    """The action as JSON. `action_json` is the one shape ActionOut documents;
    returning a response skips re-validating our own output on the hot path."""
    return json_response(action_json(action), status=status)


def _agent(request) -> Any:
    return request.auth.agent


def _switch(switch) -> dict:
    return {
        "scope": switch.scope,
        "engaged": switch.engaged,
        "reason": switch.reason,
        "changed_by": switch.changed_by,
        "changed_at": switch.changed_at,
    }


# ---------------------------------------------------------------- agents ---


@api.post(
    "/actions",
    auth=AgentKey(remembered_ok=True),
    response={200: ActionOut, 201: ActionOut, **ERRORS},
    tags=["actions"],
)
def submit_action(request, body: SubmitIn):
    """Submit an action; the answer says at once whether the agent may execute it."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.")
    submission = lifecycle.Submission(**{**body.model_dump(), "cost": body.cost.model_dump() if body.cost else None})
    submitted = lifecycle.action_submit(
        agent=_agent(request),
        submission=submission,
        idempotency_key=key,
        request_sha256=lifecycle.request_fingerprint(request.sent_json) if key else "",
        key_check=getattr(request, "key_check", None),
    )
    return _action_response(submitted.action, status=201 if submitted.created else 200)


@api.get("/actions/{uuid:action_id}", auth=AgentKey(), response={200: ActionOut, **ERRORS}, tags=["actions"])
def get_action(request, action_id: uuid.UUID):
    return _action_response(selectors.action_get_for_agent(agent=_agent(request), action_id=action_id))


class WaitQuery(Schema):
    timeout: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 30


@api.get("/actions/{uuid:action_id}/wait", auth=AgentKey(), response={200: ActionOut, **ERRORS}, tags=["actions"])
def wait_action(request, action_id: uuid.UUID, query: Query[WaitQuery]):
    """Long-poll: returns when the action leaves pending, or after `timeout` seconds (max 60).

    An agent holds at most WAIT_MAX_PER_AGENT long-polls at once (429
    `too_many_waits` past that); one whose key is revoked meanwhile ends with 401."""
    agent = _agent(request)
    action = selectors.action_get_for_agent(agent=agent, action_id=action_id)
    if action.status == "pending" and query.timeout > 0:
        with ratelimit.wait_slot(agent=agent, timeout=query.timeout):  # 429 too_many_waits past the cap
            # Hand the connection back before waiting: a waiter holds no database
            # connection. (Inside a test's transaction there is nothing to hand back.)
            if not connection.in_atomic_block:
                connection.close()
            wakeups.wait(action.pk, timeout=query.timeout, key_hash=request.auth.key_hash)
        if principal_reread(request.auth) is None:  # revoked while it waited
            raise Unauthenticated("The agent key was revoked or expired while waiting.")
        action = selectors.action_get_for_agent(agent=agent, action_id=action_id)
    return _action_response(action)


@api.post("/actions/{uuid:action_id}/cancel", auth=AgentKey(), response={200: ActionOut, **ERRORS}, tags=["actions"])
def cancel_action(request, action_id: uuid.UUID):
    """Withdraw a pending action."""
    action = selectors.action_get_for_agent(agent=_agent(request), action_id=action_id)
    return _action_response(lifecycle.action_cancel(action=action))


@api.post("/actions/{uuid:action_id}/outcome", auth=AgentKey(), response={200: ActionOut, **ERRORS}, tags=["actions"])
def report_outcome(request, action_id: uuid.UUID, body: OutcomeIn):
    """Report what happened when the agent executed an approved action."""
    action = selectors.action_get_for_agent(agent=_agent(request), action_id=action_id)
    return _action_response(
        lifecycle.action_record_outcome(
            action=action,
            outcome=body.status,
            detail=body.detail,
            duration_ms=body.duration_ms,
            error_kind=body.error_kind,
            attempt=body.attempt,
        )
    )


@api.get("/kill-switch", auth=AgentKey(), response={200: AgentKillSwitchOut, **ERRORS}, tags=["kill switch"])
def agent_kill_switch(request):
    """Whether this agent may submit now, and which switches stop it."""
    may_submit, switches = killswitch.kill_switch_status(agent=_agent(request))
    return {"may_submit": may_submit, "engaged": [_switch(s) for s in switches]}


class ScopeQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action_type: Annotated[StrictStr, Field(pattern=ACTION_TYPE)]
    tool: Annotated[StrictStr, Field(pattern=TOOL)] = ""


class ScopeCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: Annotated[list[ScopeQuestion], Field(max_length=1000)]


class ScopeCheckOut(Schema):
    agent: str
    scopes: list[str]
    allowed: list[bool]


@api.post("/agent/scopes", auth=AgentKey(), response={200: ScopeCheckOut, **ERRORS}, tags=["agents"])
def agent_scope_check(request, body: ScopeCheckIn):
    """Which of these actions this agent's scopes allow (the same rule as a
    submission's), so a gateway can hide tools it may never call. Asking
    submits nothing and is not counted against the rate limit."""
    agent = _agent(request)
    return {
        "agent": agent.name,
        "scopes": list(agent.scopes),
        "allowed": [agent.allows(q.action_type, q.tool) for q in body.actions],
    }


# ------------------------------------------------------------------- ops ---


@api.get("/ops/kill-switch", auth=OpsToken(), response={200: list[SwitchOut], **ERRORS}, tags=["ops"])
def ops_kill_switches(request):
    """Every kill switch ever set, and its state."""
    return [_switch(s) for s in KillSwitch.objects.order_by("scope")]


@api.post("/ops/kill-switch", auth=OpsToken(), response={200: SwitchSetOut, **ERRORS}, tags=["ops"])
def ops_set_kill_switch(request, body: SwitchIn):
    """Engage or release a kill switch; engaging halts every pending action in scope."""
    switch, halted = kill_switches.kill_switch_set(
        scope=body.scope, engaged=body.engaged, reason=body.reason, actor=request.auth.label
    )
    return {**_switch(switch), "halted": halted}


class DeadLetterOut(Schema):
    id: int
    event: str
    kind: str
    endpoint: str
    attempts: int
    last_error: str
    created_at: datetime
    action_id: uuid.UUID | None


class StatsOut(Schema):
    since: datetime
    queue_depth: dict[str, int]
    sla_breaches: dict[str, int]
    decision_latency_seconds: dict[str, float | int | None]
    override_rate: float | None
    overrides_by_agent_and_type: list[dict[str, Any]]
    dead_letters: int


class StatsQuery(Schema):
    hours: Annotated[int, Field(ge=1, le=24 * 90)] = 24


class LimitQuery(Schema):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


@api.get("/ops/dead-letters", auth=OpsToken(), response={200: list[DeadLetterOut], **ERRORS}, tags=["ops"])
def ops_dead_letters(request, query: Query[LimitQuery]):
    """Notifications and webhooks that failed every retry, newest first."""
    return list(selectors.ops_dead_letters(limit=query.limit))


@api.get("/ops/stats", auth=OpsToken(), response={200: StatsOut, **ERRORS}, tags=["ops"])
def ops_stats(request, query: Query[StatsQuery]):
    """Queue depths per tier, SLA breaches, decision latency and override rate."""
    return selectors.ops_stats(since=timezone.now() - timedelta(hours=query.hours))
