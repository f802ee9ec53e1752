"""reviewqueue behind the OpenAI Agents SDK's tool approvals (``needs_approval``, interruptions, ``RunState``).

Supports openai-agents>=0.24,<0.25 (tested with 0.24.0). Async, as the SDK's ``Runner.run`` is; takes a
``Client`` (its calls run in a worker thread) or an ``AsyncClient``::

    from agents import Agent
    from reviewqueue_client.openai_agents import Approvals

    approvals = Approvals()  # a Client from REVIEWQUEUE_URL / REVIEWQUEUE_API_KEY

    @approvals.tool(action_type="payments.transfer", summary=lambda **kw: f"Transfer ${kw['amount']:,} to {kw['to']}")
    def transfer_money(to: str, amount: float, currency: str) -> str: ...

    agent = Agent(name="payments", tools=[transfer_money])
    result = await approvals.run(agent, "Pay invoice 7731")  # runs, waits for the desk, resumes, until done

Mapping:

- one tool call -> one action: ``action_type`` as given (default: the tool's name), ``payload`` = the call's
  arguments as the model sent them, ``Idempotency-Key`` = ``<key_prefix>:<tool>:<call id>``. The SDK keeps
  the call id in its ``RunState``, so a process that re-runs the same call (after a crash, or resuming a
  saved state) finds the same action instead of making a second one;
- ``needs_approval`` (the policy) submits the call and holds it (True: the run is interrupted) unless
  reviewqueue lets it run now (auto or async_review: False, no interruption). A call reviewqueue refuses
  (kill switch, out of scope) is held too, and ``resolve()`` rejects it with the refusal's message;
- ``resolve()`` waits for each held call's decision and ``RunState.approve``\\s or ``RunState.reject``\\s it,
  the rejection message being the error's ``message_for_model`` (the reviewer's reason, what to do next),
  which the SDK hands the model as the tool's result;
- the tool made by ``Approvals.tool()`` runs only what reviewqueue approved: when the SDK calls it, it reads
  its action back, runs the function with ``action.executable_payload()`` (a reviewer's edit, checked
  against its SHA-256) and reports the outcome (succeeded/failed, duration, error kind). A call approved
  only locally (``state.approve`` by hand) does not run: reviewqueue is asked, not the ``RunState``; nor
  does a call whose outcome was reported already (a run resumed twice): its result says so instead;
- ``save()`` / ``resume()``: the paused run's ``RunState`` JSON plus its action ids, and a resume from the
  webhook reviewqueue POSTs (``callback_url``). The delivery's signature is checked with
  ``reviewqueue_client.webhooks.verify`` when ``secret=`` is given; either way the decision is read back
  from reviewqueue by id, so a forged delivery can at most make the run look again.

Fail closed: reviewqueue unreachable (``errors.ServiceUnavailable``), 401, 429 or a wait past ``timeout``
(``errors.StillPending``) propagate from ``resolve()`` (the state untouched: ``save()`` it, retry later) and
``run()`` (nothing ran; to keep the paused run, use ``Runner.run`` + ``resolve()`` or ``save()`` yourself).

What the SDK could not express:

- no "edit" decision, only approve/reject: the edit is honoured by the tool itself (``Approvals.tool()``).
  A plain ``function_tool(needs_approval=approvals.needs_approval(...))`` runs the model's arguments, so
  ``resolve()`` rejects an edited approval for it (saying what the reviewer approved) rather than run the
  unedited call; such a tool reports no outcome either;
- ``needs_approval`` answers yes/no: it can't refuse a call or fail. The SDK reads any exception from it as
  "needs approval", so a refusal or an unreachable server becomes an interruption, settled by ``resolve()``;
- for ``@function_tool`` functions the SDK calls a policy only when validation leaves the arguments unchanged
  (no defaults filled in, no coercion); otherwise it holds the call without asking, and ``resolve()``
  submits it then. ``Approvals.tool()`` builds its ``FunctionTool`` so the policy always sees the call;
- no "decided later": async_review runs at once and a reviewer's later flag can't reach the run;
- ``RunState.from_json`` trusts its input: keep saved runs server-side, never take them from a client.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents import Agent, FunctionTool, RunContextWrapper, Runner, RunResult, RunState, ToolApprovalItem
from agents.function_schema import DocstringStyle, function_schema
from agents.result import RunResultStreaming
from agents.tool import ToolErrorFunction, default_tool_error_function
from agents.tool_context import ToolContext
from pydantic import ValidationError

from reviewqueue_client import errors
from reviewqueue_client.client import AsyncClient, Client
from reviewqueue_client.models import Action

__all__ = ["Approvals", "saved_action_ids"]

log = logging.getLogger("reviewqueue_client")

SAVED_FORMAT = "reviewqueue.openai_agents/1"
_SUMMARY_LIMIT = 2000
_MEMORY = 10_000  # calls remembered per Approvals
# Refusals at submission that are the service's answer about this call, not an outage: the model is told.
_REFUSALS = (errors.KillSwitchEngaged, errors.OutOfScope)


@dataclass(frozen=True)
class _Reviewed:
    """How one SDK tool's calls become actions."""

    name: str
    action_type: str
    summary: str | Callable[..., str] | None
    rationale: str | Callable[..., str]
    tool: str
    context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None
    runs_approved_payload: bool  # False for a bare policy: the SDK then runs the model's arguments


class Approvals:
    """reviewqueue as the approver of an Agents SDK run's tool calls.

    - client: a Client or AsyncClient (default: a Client from REVIEWQUEUE_URL and REVIEWQUEUE_API_KEY);
    - key_prefix: the start of every Idempotency-Key (``<prefix>:<tool>:<call id>``); give each deployment
      or conversation its own if call ids could repeat (a scripted model's do);
    - conversation_id: text, or a function of the run's context object (``RunContextWrapper.context``);
    - callback_url: where reviewqueue POSTs each decision, for ``resume()``.
    """

    def __init__(
        self,
        client: Client | AsyncClient | None = None,
        *,
        key_prefix: str = "openai-agents",
        conversation_id: str | Callable[[Any], str] = "",
        callback_url: str = "",
    ):
        self._client = client
        self.key_prefix = key_prefix
        self.conversation_id = conversation_id
        self.callback_url = callback_url
        self._reviewed: dict[str, _Reviewed] = {}
        # Idempotency-Key -> action id (so the tool reads its action instead of re-submitting) and -> a
        # refusal's message. Bounded: past the bound a call is found again by submitting it (same key, same body).
        self._action_ids: dict[str, str] = {}
        self._refusals: dict[str, str] = {}

    # -- making tools -------------------------------------------------------------------------------

    def needs_approval(
        self,
        tool_name: str,
        *,
        action_type: str | None = None,
        summary: str | Callable[..., str] | None = None,
        rationale: str | Callable[..., str] = "",
        tool: str = "",
        context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    ) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]:
        """A policy for ``function_tool(needs_approval=...)`` on the tool named ``tool_name``: True (hold the
        call) unless reviewqueue lets it run now. The SDK then runs the model's arguments, so prefer
        ``tool()``, which also runs a reviewer's edit and reports the outcome."""
        return self._policy(self._register(tool_name, action_type, summary, rationale, tool, context, False))

    def tool(
        self,
        func: Callable[..., Any] | None = None,
        *,
        action_type: str | None = None,
        summary: str | Callable[..., str] | None = None,
        rationale: str | Callable[..., str] = "",
        tool: str = "",
        context: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        name_override: str | None = None,
        description_override: str | None = None,
        docstring_style: DocstringStyle | None = None,
        use_docstring_info: bool = True,
        strict_mode: bool = True,
        failure_error_function: ToolErrorFunction | None = default_tool_error_function,
    ) -> Any:
        """Decorator making a FunctionTool whose calls reviewqueue approves and which runs what was approved.

        ``summary``/``rationale``/``context``: text, or a function of the call's arguments (``**kw``).
        ``tool``: the ``tool`` field of the action (scopes and kill switches match it too; default none).
        ``failure_error_function``: what the model is told when the function raises (None: the run fails),
        as for ``function_tool``. Use it as ``@approvals.tool`` or ``@approvals.tool(action_type=...)``.
        """

        def make(fn: Callable[..., Any]) -> FunctionTool:
            schema = function_schema(
                fn,
                name_override=name_override,
                description_override=description_override,
                docstring_style=docstring_style,
                use_docstring_info=use_docstring_info,
                strict_json_schema=strict_mode,
            )
            reviewed = self._register(schema.name, action_type, summary, rationale, tool, context, True)
            is_async = inspect.iscoroutinefunction(fn)

            async def invoke(ctx: ToolContext[Any], arguments: str) -> Any:
                key = self._key(reviewed.name, ctx.tool_call_id)
                try:
                    action = await self._find(reviewed, _arguments(arguments), ctx.context, key)
                    approved = action.executable_payload()
                except (errors.ActionNotApproved, *_REFUSALS) as refused:
                    if isinstance(refused, errors.StillPending):  # approved in the RunState only
                        log.warning(
                            "tool %s: call %s is approved in the run, not in reviewqueue: not run", reviewed.name, key
                        )
                    return refused.message_for_model
                except _Refused as refused:
                    return str(refused)
                if action.outcome is not None:  # it ran before (a run resumed twice): never twice
                    return (
                        f"Already done: this call ran before ({action.outcome.status}"
                        f"{': ' + action.outcome.detail if action.outcome.detail else ''}); it was not run again."
                    )
                try:
                    args, kwargs = schema.to_call_args(schema.params_pydantic_model(**approved))
                except ValidationError as wrong:
                    await self._report(action.id, time.perf_counter(), wrong, "invalid_approved_payload")
                    return f"Not done: the approved arguments do not fit the tool {reviewed.name} ({wrong}). Tell a person."
                if schema.takes_context:
                    args = [ctx, *args]
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs) if is_async else await asyncio.to_thread(fn, *args, **kwargs)
                except Exception as failure:
                    await self._report(action.id, started, failure)
                    if failure_error_function is None:
                        raise
                    told = failure_error_function(ctx, failure)
                    return await told if inspect.isawaitable(told) else told
                await self._report(action.id, started, None)
                return result

            return FunctionTool(
                name=schema.name,
                description=schema.description or "",
                params_json_schema=schema.params_json_schema,
                on_invoke_tool=invoke,
                strict_json_schema=strict_mode,
                needs_approval=self._policy(reviewed),
            )

        return make(func) if func is not None else make

    # -- settling interruptions -----------------------------------------------------------------------

    async def resolve(
        self, result: RunResult | RunResultStreaming | RunState, *, timeout: float | None = None
    ) -> RunState:
        """Wait for each held call's decision and approve or reject it in the run's state; returns the state
        to pass to ``Runner.run(agent, state)``. Interruptions of tools this object doesn't know are left as
        they are. Raises (nothing decided, nothing run) when reviewqueue can't be reached or ``timeout``
        seconds pass without a decision (``errors.StillPending``)."""
        state = result if isinstance(result, RunState) else result.to_state()
        held = [
            (item, self._reviewed[item.tool_name or ""]) for item in state.get_interruptions() if self._is_ours(item)
        ]
        context = _user_context(result)
        verdicts = await asyncio.gather(*(self._verdict(item, reviewed, context, timeout) for item, reviewed in held))
        for (item, _), refusal in zip(held, verdicts, strict=True):
            if refusal is None:
                state.approve(item)
            else:
                state.reject(item, rejection_message=refusal)
        return state

    async def run(self, agent: Agent[Any], input: Any, *, timeout: float | None = None, **runner: Any) -> RunResult:
        """``Runner.run`` until the run needs nothing from reviewqueue: each round's held calls are resolved
        and the run resumed. Returns early (with its interruptions) if a tool it doesn't know is held.
        ``runner``: Runner.run's options (``context`` goes to the first round; the state carries it)."""
        result = await Runner.run(agent, input, **runner)
        resumed = {name: value for name, value in runner.items() if name != "context"}
        while result.interruptions and all(self._is_ours(item) for item in result.interruptions):
            result = await Runner.run(agent, await self.resolve(result, timeout=timeout), **resumed)
        return result

    # -- pausing and resuming -------------------------------------------------------------------------------

    async def save(self, result: RunResult | RunResultStreaming | RunState, *, context_serializer: Any = None) -> str:
        """The paused run as JSON text: the SDK's RunState and the action id of each held call. Store it
        server-side (it holds the conversation) under its action ids (``saved_action_ids``)."""
        state = result if isinstance(result, RunState) else result.to_state()
        context = _user_context(result)
        held = []
        for item in state.get_interruptions():
            if not self._is_ours(item):
                continue
            reviewed = self._reviewed[item.tool_name or ""]
            key = self._key(reviewed.name, _call_id(item))
            entry: dict[str, Any] = {"tool": reviewed.name, "call_id": _call_id(item), "key": key}
            try:
                entry["action_id"] = (await self._find(reviewed, _arguments(item.arguments), context, key)).id
            except (_Refused, *_REFUSALS) as refused:
                entry["refusal"] = getattr(refused, "message_for_model", str(refused))
            held.append(entry)
        return json.dumps(
            {"format": SAVED_FORMAT, "held": held, "state": state.to_json(context_serializer=context_serializer)}
        )

    async def resume(
        self,
        agent: Agent[Any],
        saved: str,
        webhook: bytes | str | Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        context_deserializer: Any = None,
        **runner: Any,
    ) -> RunResult | None:
        """Resume a saved run once every held call is decided; None while one still waits (resume again on
        the next delivery). ``webhook``: the body reviewqueue POSTed (its raw bytes, to check the signature
        with ``secret``, the agent's webhook secret, and ``headers``); without ``secret`` checking the
        signature is the caller's job. Each decision is read from reviewqueue, not taken from the body.
        A call whose outcome was reported already is not run again (a delivery's retry), but two resumes of
        one saved run at the same moment could both run it: claim the saved run (lock or delete it) first."""
        data = json.loads(saved)
        if not isinstance(data, dict) or data.get("format") != SAVED_FORMAT:
            raise errors.ConfigurationError(f"Not a run saved by Approvals.save() ({SAVED_FORMAT}).")
        if webhook is not None:
            delivered = _delivered_action_id(webhook, headers, secret)
            if delivered not in saved_action_ids(saved):
                raise errors.ConfigurationError(f"The delivery is about action {delivered}, not one this run holds.")
        for entry in data["held"]:
            if entry.get("action_id"):
                _remember(self._action_ids, entry["key"], entry["action_id"])
            elif entry.get("refusal"):
                _remember(self._refusals, entry["key"], entry["refusal"])
        ids = [entry["action_id"] for entry in data["held"] if entry.get("action_id")]
        actions = await asyncio.gather(*(self._call("get", action_id) for action_id in ids))
        if not all(action.is_final for action in actions):
            return None
        state = await RunState.from_json(agent, data["state"], context_deserializer=context_deserializer)
        return await Runner.run(agent, await self.resolve(state), **runner)

    # -- inside ---------------------------------------------------------------------------------------------

    def _register(self, name, action_type, summary, rationale, tool, context, runs_approved_payload) -> _Reviewed:
        """The tool's review; a tool built again under the same name (an agent rebuilt per request) replaces it."""
        reviewed = _Reviewed(name, action_type or name, summary, rationale, tool, context, runs_approved_payload)
        self._reviewed[name] = reviewed
        return reviewed

    def _policy(self, reviewed: _Reviewed) -> Callable[[RunContextWrapper[Any], dict[str, Any], str], Awaitable[bool]]:
        async def needs_approval(run: RunContextWrapper[Any], arguments: dict[str, Any], call_id: str) -> bool:
            key = self._key(reviewed.name, call_id)
            try:
                action = await self._find(reviewed, arguments, run.context, key)
            except _REFUSALS as refused:
                _remember(self._refusals, key, refused.message_for_model)
                return True
            except (errors.ReviewqueueError, _Refused) as problem:  # fail closed: resolve() meets it again
                log.warning("tool %s: holding call %s: %s", reviewed.name, key, problem)
                return True
            return not action.may_execute or (action.edited and not reviewed.runs_approved_payload)

        needs_approval.__qualname__ = f"needs_approval[{reviewed.name}]"
        return needs_approval

    async def _verdict(
        self, item: ToolApprovalItem, reviewed: _Reviewed, context: Any, timeout: float | None
    ) -> str | None:
        """None to approve, or what the model is told."""
        key = self._key(reviewed.name, _call_id(item))
        try:
            action = await self._find(reviewed, _arguments(item.arguments), context, key)
            if not action.is_final:
                action = await self._call("wait", action.id, timeout=timeout)
            approved = action.executable_payload()
        except errors.StillPending:
            raise
        except (errors.ActionNotApproved, *_REFUSALS) as refused:
            return refused.message_for_model
        except _Refused as refused:
            return str(refused)
        if action.edited and not reviewed.runs_approved_payload:
            return (
                f"Not done: a reviewer approved it only with these arguments: {json.dumps(approved)}, and this tool "
                "cannot run a reviewer's edit. Propose the call again with those arguments if they still fit."
            )
        return None

    async def _find(self, reviewed: _Reviewed, arguments: dict[str, Any], context: Any, key: str) -> Action:
        """The call's action: read back by id when known, else submitted (the same key and body give
        the same action, so this finds it after a restart)."""
        if key in self._refusals:
            raise _Refused(self._refusals[key])
        if key in self._action_ids:
            return await self._call("get", self._action_ids[key])
        action = await self._call("submit", **self._submission(reviewed, arguments, context), idempotency_key=key)
        _remember(self._action_ids, key, action.id)
        return action

    def _submission(self, reviewed: _Reviewed, arguments: dict[str, Any], context: Any) -> dict[str, Any]:
        conversation = self.conversation_id(context) if callable(self.conversation_id) else self.conversation_id
        summary = _text(reviewed.summary, arguments) or _default_summary(reviewed.name, arguments)
        return {
            "action_type": reviewed.action_type,
            "payload": arguments,
            "summary": summary[:_SUMMARY_LIMIT],
            "tool": reviewed.tool,
            "rationale": _text(reviewed.rationale, arguments),
            "conversation_id": conversation or "",
            "context": _text(reviewed.context, arguments),
            "callback_url": self.callback_url,
        }

    async def _report(self, action_id: str, started: float, failure: BaseException | None, kind: str = "") -> None:
        """The tool ran (or was meant to): its result is the model's even if the report can't be delivered."""
        report: dict[str, Any] = {"duration_ms": round((time.perf_counter() - started) * 1000), "attempt": 1}
        if failure is None:
            report["status"] = "succeeded"
        else:
            kind = kind or re.sub(r"(?<!^)(?=[A-Z])", "_", type(failure).__name__).lower()
            report.update(status="failed", detail=f"{type(failure).__name__}: {failure}", error_kind=kind[:64])
        try:
            await self._call("report_outcome", action_id, **report)
        except errors.ReviewqueueError as problem:
            log.warning("could not report the outcome of action %s: %s", action_id, problem)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = Client()
        function = getattr(self._client, method)
        if inspect.iscoroutinefunction(function):
            return await function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    def _key(self, tool_name: str, call_id: str) -> str:
        return f"{self.key_prefix}:{tool_name}:{call_id}"

    def _is_ours(self, item: ToolApprovalItem) -> bool:
        return item.tool_name in self._reviewed and bool(item.call_id)


class _Refused(Exception):
    """A call reviewqueue refused at submission, remembered: its message for the model."""


def _remember(memory: dict[str, str], key: str, value: str) -> None:
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > _MEMORY:
        memory.pop(next(iter(memory)))


def saved_action_ids(saved: str) -> list[str]:
    """The action ids a saved run waits on: the keys to find it by when a webhook arrives."""
    return [entry["action_id"] for entry in json.loads(saved)["held"] if entry.get("action_id")]


def _delivered_action_id(
    webhook: bytes | str | Mapping[str, Any], headers: Mapping[str, str] | None, secret: str | None
) -> str:
    if secret:
        from reviewqueue_client import webhooks

        if isinstance(webhook, Mapping):
            raise errors.ConfigurationError("Pass the delivery's raw body (bytes) to check its signature.")
        return webhooks.verify(webhook, headers or {}, secret).id
    body = webhook if isinstance(webhook, Mapping) else json.loads(webhook)
    if not isinstance(body, Mapping) or not isinstance(body.get("id"), str):
        raise errors.InvalidRequest("The delivery is not an action (no id).")
    return body["id"]


def _call_id(item: ToolApprovalItem) -> str:
    call_id = item.call_id
    if not call_id:
        raise errors.ConfigurationError(f"The held call of {item.tool_name!r} has no call id.")
    return call_id


def _arguments(arguments: str | None) -> dict[str, Any]:
    """The payload: the call's arguments as the model sent them (what the policy saw, so the same body)."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise errors.InvalidRequest(f"The tool call's arguments are not a JSON object: {arguments!r}.")
    return parsed


def _text(value: Any, arguments: dict[str, Any]) -> Any:
    return value(**arguments) if callable(value) else value


def _default_summary(name: str, arguments: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{field}={value!r}' for field, value in arguments.items())})"


def _user_context(result: RunResult | RunResultStreaming | RunState) -> Any:
    wrapper = getattr(result, "context_wrapper", None) or getattr(result, "_context", None)
    return getattr(wrapper, "context", None)
