"""`@gate`: put a tool behind reviewqueue with one line.

The decorated function (sync or async) is proposed as an action whose
payload is its keyword arguments; it runs only once reviewqueue says it may,
with the approved arguments (a reviewer's edits included), and its outcome
(succeeded or failed, with duration and error) is reported back.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from reviewqueue_client import errors
from reviewqueue_client.client import AsyncClient, Client

log = logging.getLogger("reviewqueue_client")
F = TypeVar("F", bound=Callable[..., Any])
# What a model can act on; anything else (unreachable server, bad key, bad input) always raises.
_TOLD_TO_MODEL = (errors.ActionNotApproved, errors.KillSwitchEngaged, errors.OutOfScope, errors.RateLimited)


def gate(
    action_type: str,
    *,
    client: Client | AsyncClient | None = None,
    summary: str | Callable[..., str] | None = None,
    tool: str = "",
    rationale: str | Callable[..., str] = "",
    conversation_id: str | Callable[..., str] = "",
    context: dict[str, Any] | Callable[..., dict[str, Any]] | None = None,
    idempotency_key: Callable[..., str] | None = None,
    on_reject: Literal["raise", "message"] = "raise",
    wait_timeout: float | None = None,
) -> Callable[[F], F]:
    """Gate a tool function behind reviewqueue.

    - summary/rationale/conversation_id/context: text, or a function of the
      call's keyword arguments.
    - idempotency_key: a function of the keyword arguments giving a natural
      key (`lambda **kw: f"refund:{kw['order_id']}"`), so a re-run after a
      crash finds the same action; by default each call is a new action.
    - on_reject: "raise" raises the typed error; "message" returns its
      `message_for_model` as the tool's result, for frameworks that show a
      tool's result to the model.
    - client: a Client (sync functions) or AsyncClient (async ones); by
      default one is made from REVIEWQUEUE_URL and REVIEWQUEUE_API_KEY.
    """
    if on_reject not in ("raise", "message"):
        raise ValueError("on_reject must be 'raise' or 'message'")

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        is_async = inspect.iscoroutinefunction(fn)
        if client is not None and inspect.iscoroutinefunction(client.submit_and_wait) != is_async:
            raise errors.ConfigurationError(
                f"{fn.__name__} is {'async' if is_async else 'sync'}: gate it with "
                f"{'an AsyncClient' if is_async else 'a Client'}."
            )
        made: list[Any] = []

        def the_client() -> Any:
            if client is not None:
                return client
            if not made:
                made.append(AsyncClient() if is_async else Client())
            return made[0]

        def submission(args: tuple, kwargs: dict) -> dict[str, Any]:
            payload = _payload(fn, signature, args, kwargs)
            return {
                "action_type": action_type,
                "payload": payload,
                "summary": _text(summary, payload) or _default_summary(fn, payload),
                "tool": tool,
                "rationale": _text(rationale, payload),
                "conversation_id": _text(conversation_id, payload),
                "context": context(**payload) if callable(context) else context,
                "idempotency_key": idempotency_key(**payload) if idempotency_key else None,
            }

        if is_async:

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                rq = the_client()
                try:
                    action = await rq.submit_and_wait(wait_timeout=wait_timeout, **submission(args, kwargs))
                    approved = action.executable_payload()
                except _TOLD_TO_MODEL as refused:
                    if on_reject == "message":
                        return refused.message_for_model
                    raise
                started = time.perf_counter()
                try:
                    result = await fn(**approved)
                except Exception as failure:
                    await _report_async(rq, action.id, started, failure)
                    raise
                await _report_async(rq, action.id, started, None)
                return result

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            rq = the_client()
            try:
                action = rq.submit_and_wait(wait_timeout=wait_timeout, **submission(args, kwargs))
                approved = action.executable_payload()
            except _TOLD_TO_MODEL as refused:
                if on_reject == "message":
                    return refused.message_for_model
                raise
            started = time.perf_counter()
            try:
                result = fn(**approved)
            except Exception as failure:
                _report(rq, action.id, started, failure)
                raise
            _report(rq, action.id, started, None)
            return result

        return run  # type: ignore[return-value]

    return decorate


def _payload(fn: Callable, signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call as keyword arguments (defaults included, so a reviewer sees everything that will run)."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as wrong:
        raise TypeError(f"{fn.__name__}: {wrong}") from None
    bound.apply_defaults()
    payload = dict(bound.arguments)
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            payload.update(payload.pop(name))
        elif parameter.kind in (parameter.VAR_POSITIONAL, parameter.POSITIONAL_ONLY):
            raise TypeError(f"{fn.__name__}: a gated function takes keyword-able arguments only (not *{name})")
    try:
        json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as wrong:
        raise errors.InvalidRequest(f"{fn.__name__}: its arguments must be JSON ({wrong}).") from None
    return payload


def _text(value: Any, payload: dict[str, Any]) -> Any:
    return value(**payload) if callable(value) else value


def _default_summary(fn: Callable, payload: dict[str, Any]) -> str:
    shown = ", ".join(f"{name}={value!r}" for name, value in payload.items())
    return f"{fn.__name__}({shown})"[:2000]


def _measured(started: float, failure: BaseException | None) -> dict[str, Any]:
    report: dict[str, Any] = {"duration_ms": round((time.perf_counter() - started) * 1000), "attempt": 1}
    if failure is None:
        return {**report, "status": "succeeded"}
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(failure).__name__).lower()
    return {**report, "status": "failed", "detail": f"{type(failure).__name__}: {failure}", "error_kind": kind[:64]}


def _report(rq: Client, action_id: str, started: float, failure: BaseException | None) -> None:
    """The tool ran: its result is the caller's even if the report can't be delivered."""
    try:
        rq.report_outcome(action_id, **_measured(started, failure))
    except errors.ReviewqueueError as problem:
        log.warning("could not report the outcome of action %s: %s", action_id, problem)


async def _report_async(rq: AsyncClient, action_id: str, started: float, failure: BaseException | None) -> None:
    try:
        await rq.report_outcome(action_id, **_measured(started, failure))
    except errors.ReviewqueueError as problem:
        log.warning("could not report the outcome of action %s: %s", action_id, problem)
