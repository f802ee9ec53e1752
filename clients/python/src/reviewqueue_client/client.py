"""Sync and asyncio clients for reviewqueue's agent API, on httpx.

Failure budget (the production playbook's): a call is tried at most
1 + max_retries times (3 by default), on connection errors, 429 (after its
Retry-After), 503 and other 5xx, with exponential backoff and full jitter.
Every write carries an Idempotency-Key, the same on each retry of one
logical call, so a retry or a re-run never makes a second action. When
reviewqueue can't be reached, calls raise ServiceUnavailable: the caller
runs nothing (fail closed).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from reviewqueue_client import errors
from reviewqueue_client.models import Action, KillSwitchStatus, ScopeCheck

LONG_POLL_MAX = 60.0  # the server's cap on one wait (seconds)
RETRY_AFTER_MAX = 30.0  # longer than this, a 429 is the caller's to handle
_RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class _Call:
    """One logical API call: the same on each of its retries (its key included)."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None
    timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _settings(url: str | None, api_key: str | None) -> tuple[str, str]:
    url = url or os.environ.get("REVIEWQUEUE_URL", "")
    api_key = api_key or os.environ.get("REVIEWQUEUE_API_KEY", "")
    if not url:
        raise errors.ConfigurationError("No reviewqueue URL: set REVIEWQUEUE_URL or pass url=.")
    if not url.startswith(("http://", "https://")):
        raise errors.ConfigurationError(f"REVIEWQUEUE_URL must start with http:// or https:// (got {url!r}).")
    if not api_key:
        raise errors.ConfigurationError("No agent key: set REVIEWQUEUE_API_KEY or pass api_key=.")
    return url.rstrip("/"), api_key


def _submit_call(
    *,
    action_type: str,
    payload: Mapping[str, Any],
    summary: str,
    tool: str,
    rationale: str,
    conversation_id: str,
    context: Mapping[str, Any] | None,
    cost: Mapping[str, Any] | None,
    callback_url: str,
    idempotency_key: str | None,
) -> _Call:
    body: dict[str, Any] = {"action_type": action_type, "payload": dict(payload), "summary": summary}
    optional = {"tool": tool, "rationale": rationale, "conversation_id": conversation_id, "callback_url": callback_url}
    body.update({name: value for name, value in optional.items() if value})
    if context is not None:
        body["context"] = dict(context)
    if cost is not None:
        body["cost"] = dict(cost)
    return _Call("POST", "/api/v1/actions", body, headers={"Idempotency-Key": idempotency_key or _new_key()})


def _outcome_call(
    action_id: str,
    status: Literal["succeeded", "failed"],
    detail: str,
    duration_ms: int | None,
    error_kind: str | None,
    attempt: int | None,
) -> _Call:
    body: dict[str, Any] = {"status": status, "detail": detail[:10_000]}
    if duration_ms is not None:
        body["duration_ms"] = max(0, int(duration_ms))
    if error_kind:
        body["error_kind"] = error_kind
    if attempt is not None:
        body["attempt"] = attempt
    return _Call("POST", f"/api/v1/actions/{action_id}/outcome", body, headers={"Idempotency-Key": _new_key()})


def _scope_call(actions: list[tuple[str, str]]) -> _Call:
    body = {"actions": [{"action_type": action_type, "tool": tool} for action_type, tool in actions]}
    return _Call("POST", "/api/v1/agent/scopes", body)


def _cancelled(action: Action) -> bool:
    """A cancel answered 409 because an earlier try of it (whose answer was lost) went through."""
    return action.status == "cancelled"


def _reported(action: Action, status: str) -> bool:
    """An outcome report answered 409 because an earlier try of it went through."""
    return action.outcome is not None and action.outcome.status == status


def _new_key() -> str:
    return f"rq-{uuid.uuid4()}"


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _backoff(attempt: int, base: float) -> float:
    """Full jitter: a random pause up to base·2^attempt (capped), so retrying clients spread out."""
    return random.uniform(0, min(8.0, base * 2**attempt))  # noqa: S311 (jitter, not a secret)


def _error(response: httpx.Response) -> errors.ReviewqueueError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return errors.from_response(response.status_code, body, _retry_after(response))


def _pause(call_retries: int, attempt: int, response: httpx.Response | None, base: float) -> float | None:
    """How long to wait before trying again, or None when the answer is final."""
    if attempt >= call_retries:
        return None
    if response is None:  # a connection error or a timeout
        return _backoff(attempt, base)
    if response.status_code not in _RETRY_STATUSES and response.status_code < 500:
        return None
    after = _retry_after(response)
    if after is not None:
        return after if after <= RETRY_AFTER_MAX else None
    return _backoff(attempt, base)


def _unreachable(url: str, problem: Exception) -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable(
        f"reviewqueue at {url} could not be reached ({type(problem).__name__}: {problem})."
    )


class _Base:
    def __init__(self, url: str | None, api_key: str | None, timeout: float, max_retries: int, backoff: float):
        if not 0 <= max_retries <= 3:
            raise errors.ConfigurationError("max_retries must be 0 to 3 (a failing call is not retried forever).")
        self.url, self._key = _settings(url, api_key)
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self._headers = {"Authorization": f"Bearer {self._key}", "User-Agent": "reviewqueue-client/0.1"}

    def _request_args(self, call: _Call) -> dict[str, Any]:
        return {
            "method": call.method,
            "url": call.path,
            "json": call.body,
            "params": call.params,
            "headers": dict(call.headers),
            "timeout": call.timeout if call.timeout is not None else self.timeout,
        }

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def _wait_call(self, action_id: str, seconds: float) -> _Call:
        seconds = max(0.0, min(LONG_POLL_MAX, seconds))
        return _Call(
            "GET", f"/api/v1/actions/{action_id}/wait", params={"timeout": f"{seconds:.3f}"}, timeout=seconds + 15
        )


class Client(_Base):
    """reviewqueue's agent API. Configure with url/api_key or REVIEWQUEUE_URL and REVIEWQUEUE_API_KEY."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff: float = 0.25,
        http: httpx.Client | None = None,
    ):
        super().__init__(url, api_key, timeout, max_retries, backoff)
        self._http = http or httpx.Client(base_url=self.url, headers=self._headers, timeout=timeout)
        if http is not None:
            self._http.base_url, self._http.headers = httpx.URL(self.url), httpx.Headers(self._headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, call: _Call) -> Any:
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = self._http.request(**self._request_args(call))
            except httpx.TransportError as problem:
                pause = _pause(self.max_retries, attempt, None, self.backoff)
                if pause is None:
                    raise _unreachable(self.url, problem) from problem
            else:
                pause = _pause(self.max_retries, attempt, response, self.backoff)
                if pause is None:
                    return self._answer(response)
            time.sleep(pause)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    def submit(
        self,
        *,
        action_type: str,
        payload: Mapping[str, Any],
        summary: str,
        tool: str = "",
        rationale: str = "",
        conversation_id: str = "",
        context: Mapping[str, Any] | None = None,
        cost: Mapping[str, Any] | None = None,
        callback_url: str = "",
        idempotency_key: str | None = None,
    ) -> Action:
        """Propose an action; the answer says at once whether it may run (`may_execute`).
        The same idempotency_key and body give back the same action, never a second one."""
        call = _submit_call(
            action_type=action_type,
            payload=payload,
            summary=summary,
            tool=tool,
            rationale=rationale,
            conversation_id=conversation_id,
            context=context,
            cost=cost,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
        return Action.model_validate(self._call(call))

    def get(self, action_id: str) -> Action:
        return Action.model_validate(self._call(_Call("GET", f"/api/v1/actions/{action_id}")))

    def wait(self, action_id: str, *, timeout: float | None = None) -> Action:
        """The action once decided, over as many long-polls as it takes;
        past `timeout` seconds (None: no limit), errors.StillPending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL_MAX if deadline is None else deadline - time.monotonic()
            action = Action.model_validate(self._call(self._wait_call(action_id, left)))
            if action.is_final:
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.StillPending(action)

    def submit_and_wait(self, *, wait_timeout: float | None = None, **submission: Any) -> Action:
        """submit() then wait() for a final status (approved, rejected, …): check
        `may_execute`, or call `executable_payload()`, which raises if it may not run."""
        action = self.submit(**submission)
        return action if action.is_final else self.wait(action.id, timeout=wait_timeout)

    def cancel(self, action_id: str) -> Action:
        """Withdraw a pending action (a cancel that was already done answers with the action)."""
        try:
            return Action.model_validate(self._call(_Call("POST", f"/api/v1/actions/{action_id}/cancel", {})))
        except errors.Conflict:
            action = self.get(action_id)
            if _cancelled(action):
                return action
            raise

    def report_outcome(
        self,
        action_id: str,
        *,
        status: Literal["succeeded", "failed"],
        detail: str = "",
        duration_ms: int | None = None,
        error_kind: str | None = None,
        attempt: int | None = None,
    ) -> Action:
        """Say what happened when the action ran (once per action; a retry of
        a report that reached the server answers with the action)."""
        try:
            return Action.model_validate(
                self._call(_outcome_call(action_id, status, detail, duration_ms, error_kind, attempt))
            )
        except errors.Conflict:
            action = self.get(action_id)
            if _reported(action, status):
                return action
            raise

    def kill_switch(self) -> KillSwitchStatus:
        """Whether this agent may submit now, and every engaged switch that concerns it."""
        return KillSwitchStatus.model_validate(self._call(_Call("GET", "/api/v1/kill-switch")))

    def allowed(self, actions: list[tuple[str, str]]) -> ScopeCheck:
        """Which (action_type, tool) pairs this agent's scopes allow; submits nothing."""
        return ScopeCheck.model_validate(self._call(_scope_call(actions)))


class AsyncClient(_Base):
    """The asyncio twin of Client: the same methods, awaited."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff: float = 0.25,
        http: httpx.AsyncClient | None = None,
    ):
        super().__init__(url, api_key, timeout, max_retries, backoff)
        self._http = http or httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=timeout)
        if http is not None:
            self._http.base_url, self._http.headers = httpx.URL(self.url), httpx.Headers(self._headers)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, call: _Call) -> Any:
        for attempt in range(self.max_retries + 1):
            response: httpx.Response | None = None
            try:
                response = await self._http.request(**self._request_args(call))
            except httpx.TransportError as problem:
                pause = _pause(self.max_retries, attempt, None, self.backoff)
                if pause is None:
                    raise _unreachable(self.url, problem) from problem
            else:
                pause = _pause(self.max_retries, attempt, response, self.backoff)
                if pause is None:
                    return self._answer(response)
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def submit(
        self,
        *,
        action_type: str,
        payload: Mapping[str, Any],
        summary: str,
        tool: str = "",
        rationale: str = "",
        conversation_id: str = "",
        context: Mapping[str, Any] | None = None,
        cost: Mapping[str, Any] | None = None,
        callback_url: str = "",
        idempotency_key: str | None = None,
    ) -> Action:
        call = _submit_call(
            action_type=action_type,
            payload=payload,
            summary=summary,
            tool=tool,
            rationale=rationale,
            conversation_id=conversation_id,
            context=context,
            cost=cost,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
        )
        return Action.model_validate(await self._call(call))

    async def get(self, action_id: str) -> Action:
        return Action.model_validate(await self._call(_Call("GET", f"/api/v1/actions/{action_id}")))

    async def wait(self, action_id: str, *, timeout: float | None = None) -> Action:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL_MAX if deadline is None else deadline - time.monotonic()
            action = Action.model_validate(await self._call(self._wait_call(action_id, left)))
            if action.is_final:
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.StillPending(action)

    async def submit_and_wait(self, *, wait_timeout: float | None = None, **submission: Any) -> Action:
        action = await self.submit(**submission)
        return action if action.is_final else await self.wait(action.id, timeout=wait_timeout)

    async def cancel(self, action_id: str) -> Action:
        try:
            return Action.model_validate(await self._call(_Call("POST", f"/api/v1/actions/{action_id}/cancel", {})))
        except errors.Conflict:
            action = await self.get(action_id)
            if _cancelled(action):
                return action
            raise

    async def report_outcome(
        self,
        action_id: str,
        *,
        status: Literal["succeeded", "failed"],
        detail: str = "",
        duration_ms: int | None = None,
        error_kind: str | None = None,
        attempt: int | None = None,
    ) -> Action:
        try:
            return Action.model_validate(
                await self._call(_outcome_call(action_id, status, detail, duration_ms, error_kind, attempt))
            )
        except errors.Conflict:
            action = await self.get(action_id)
            if _reported(action, status):
                return action
            raise

    async def kill_switch(self) -> KillSwitchStatus:
        return KillSwitchStatus.model_validate(await self._call(_Call("GET", "/api/v1/kill-switch")))

    async def allowed(self, actions: list[tuple[str, str]]) -> ScopeCheck:
        return ScopeCheck.model_validate(await self._call(_scope_call(actions)))
