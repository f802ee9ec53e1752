"""reviewqueue behind LangChain v1's stock human-in-the-loop middleware.

Supports langchain>=1.5,<2 and langgraph>=1.2,<2 (tested with langchain 1.5.2, langgraph 1.2.24).

An agent built with ``create_agent(..., middleware=[HumanInTheLoopMiddleware(interrupt_on={...})],
checkpointer=...)`` pauses on the tool calls it gates. This module answers those pauses with reviewqueue
instead of a person at a prompt: every gated tool call becomes one reviewqueue action, and the action's
final state becomes the middleware's decision::

    from reviewqueue_client.langchain import run

    state = run(agent, {"messages": [{"role": "user", "content": "Pay invoice 7"}]},
                {"configurable": {"thread_id": "conv-7"}},
                action_types={"transfer_money": "payments.transfer"})

Mapping (both ``interrupt_mode="batched"`` and ``"per_call"``):

- one tool call -> one action: ``action_type`` from ``action_types[tool]`` or ``action_type_prefix + tool``,
  ``payload`` = the call's args, ``summary`` = the middleware's description (or ``tool: args``),
  ``conversation_id`` = the thread id, ``Idempotency-Key`` = ``langgraph:<thread>:<interrupt id>:<index>``.
  LangGraph keeps an interrupt's id in the checkpoint, so a process that died while waiting and re-reads
  its checkpoint submits the same key and finds the same action (no duplicate for the desk);
- approved (auto or async_review at once, or by a reviewer) with the args as proposed -> ``approve``;
  approved with a reviewer's edit -> ``edit`` carrying the approved payload, checked against its SHA-256;
- rejected, expired, cancelled, halted, or refused at submission by a kill switch or the agent's scopes
  -> ``reject`` whose message is the error's ``message_for_model`` (the reviewer's reason, what to do next);
- ``run`` then reports each approved call's result (its ToolMessage: success or error) as the outcome.

A tool whose ``interrupt_on`` entry does not allow both "approve" and "reject" raises ValueError before
anything is submitted; a reviewer's edit for a tool that does not allow "edit" is given as a rejection.

Fail closed: when reviewqueue cannot be reached (``errors.ServiceUnavailable``), answers 401/429/4xx,
or the wait times out (``errors.StillPending``), the error propagates and no decision is given. The
graph stays paused at its checkpoint with nothing run; resolving the same interrupt later (``run(agent,
None, config)``) finds the same actions. Rejecting instead would write a permanent "rejected" into the
conversation for a call no reviewer saw, and the model would carry on as if someone had said no.

What LangChain could not express:

- no "decided later": a resume value must be final, so the process waits for the reviewer (or stops and
  resumes the thread later); an async_review action runs at once and a reviewer's later flag cannot
  reach the agent;
- a batch is answered in one resume, so an approved call waits for the slowest decision of its turn;
- the middleware words every rejection as "User rejected the tool call ... with reason: <message>",
  for a reviewer's rejection and a kill switch alike;
- an edit carries no note: the reviewer's note on an edited approval does not reach the model (the
  middleware's fixed ``edit_notice`` does);
- the batched interrupt has no tool-call id, so outcomes are matched to tool calls by position in the
  checkpointed AI message; a tool that raises (instead of returning an error ToolMessage) aborts the run
  before its result is recorded, and no outcome is reported for it;
- a ``when`` predicate that lets a call through skips the interrupt, hence reviewqueue, entirely;
- the tool runs the args the resume value carries and cannot check them against
  ``approved_payload_sha256`` itself: the check happens here, before resuming;
- the ``respond`` decision (a person answering for the tool) has no reviewqueue counterpart: never given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

from reviewqueue_client import errors
from reviewqueue_client.client import AsyncClient, Client
from reviewqueue_client.models import Action

__all__ = [
    "InterruptResolver",
    "Resolution",
    "ToolReview",
    "arun",
    "idempotency_key",
    "pending_interrupts",
    "resume_value",
    "run",
]

# What the middleware may be told; a reviewqueue action can only end in these two.
_NEEDED_DECISIONS = ("approve", "reject")
_SUMMARY_LIMIT = 2000
_TOOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,199}$")
_KEY_SAFE = re.compile(r"^[\x21-\x7e]{1,200}$")
# Refusals at submission that are the service's answer about this call, not an outage: the model is told.
_REFUSALS = (errors.KillSwitchEngaged, errors.OutOfScope)


@dataclass
class ToolReview:
    """One gated tool call on its way through reviewqueue (what the caller can inspect or print)."""

    interrupt_id: str
    index: int
    tool: str
    args: dict[str, Any]
    description: str
    allowed_decisions: tuple[str, ...]
    tool_call_id: str | None
    idempotency_key: str
    action: Action | None = None
    error: errors.ReviewqueueError | None = None
    """Why it may not run: a refusal at submission or the not-approved error of a final action."""
    decision: dict[str, Any] | None = None

    @property
    def may_run(self) -> bool:
        return self.decision is not None and self.decision["type"] in ("approve", "edit")


@dataclass
class Resolution:
    """The decisions for a set of interrupts: ``resume`` maps interrupt id -> resume value."""

    reviews: list[ToolReview]
    resume: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> Command:
        return Command(resume=self.resume)


class InterruptResolver:
    """Answers HumanInTheLoopMiddleware interrupts with reviewqueue decisions.

    ``client``: a Client for the sync methods, an AsyncClient for the ``a``-methods (one is made from
    REVIEWQUEUE_URL / REVIEWQUEUE_API_KEY when not given). ``action_types`` maps tool names to action
    types; other tools get ``action_type_prefix + name``. ``summary(tool, args, description)`` overrides
    the summary (keep it deterministic: a re-run must send the same body). ``wait_timeout`` bounds each
    wait (then errors.StillPending; the graph stays paused). ``on_event(event, review)`` is called with
    "submitted", "refused" and "decided" as they happen.
    """

    def __init__(
        self,
        client: Client | AsyncClient | None = None,
        *,
        action_types: Mapping[str, str] | None = None,
        action_type_prefix: str = "",
        summary: Callable[[str, dict[str, Any], str], str] | None = None,
        wait_timeout: float | None = None,
        on_event: Callable[[str, ToolReview], None] | None = None,
    ):
        self._client = client
        self.action_types = dict(action_types or {})
        self.action_type_prefix = action_type_prefix
        self.summary = summary
        self.wait_timeout = wait_timeout
        self.on_event = on_event

    # -- clients -------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client()
        if not isinstance(self._client, Client):
            raise TypeError("This resolver holds an AsyncClient: use its a-methods (aresolve, aresume_value).")
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        if self._client is None:
            self._client = AsyncClient()
        if not isinstance(self._client, AsyncClient):
            raise TypeError("This resolver holds a sync Client: use resolve/resume_value, or pass an AsyncClient.")
        return self._client

    # -- sync ----------------------------------------------------------------------------------

    def resume_value(self, interrupt: Any, *, thread_id: str) -> Any:
        """The resume value for one interrupt: ``{"decisions": [...]}`` (batched) or one decision (per_call)."""
        return self.resolve([interrupt], thread_id=thread_id).resume[interrupt.id]

    def resolve(self, interrupts: Sequence[Any], *, thread_id: str) -> Resolution:
        """Submit every gated call of these interrupts, then wait for each: a batch reaches the desk at once."""
        reviews = self._reviews(interrupts, thread_id)
        for review in reviews:
            try:
                review.action = self.client.submit(**self._submission(review, thread_id))
            except _REFUSALS as err:
                self._refuse(review, err)
            else:
                self._emit("submitted", review)
        for review in reviews:
            if review.action is not None:
                if not review.action.is_final:
                    review.action = self.client.wait(review.action.id, timeout=self.wait_timeout)
                self._decide(review)
        return self._resolution(interrupts, reviews)

    # -- async ---------------------------------------------------------------------------------

    async def aresume_value(self, interrupt: Any, *, thread_id: str) -> Any:
        """Async ``resume_value`` (needs an AsyncClient)."""
        return (await self.aresolve([interrupt], thread_id=thread_id)).resume[interrupt.id]

    async def aresolve(self, interrupts: Sequence[Any], *, thread_id: str) -> Resolution:
        """Async ``resolve`` (needs an AsyncClient)."""
        reviews = self._reviews(interrupts, thread_id)
        for review in reviews:
            try:
                review.action = await self.async_client.submit(**self._submission(review, thread_id))
            except _REFUSALS as err:
                self._refuse(review, err)
            else:
                self._emit("submitted", review)
        for review in reviews:
            if review.action is not None:
                if not review.action.is_final:
                    review.action = await self.async_client.wait(review.action.id, timeout=self.wait_timeout)
                self._decide(review)
        return self._resolution(interrupts, reviews)

    # -- the mapping (no I/O) ------------------------------------------------------------------

    def _reviews(self, interrupts: Sequence[Any], thread_id: str) -> list[ToolReview]:
        """One ToolReview per gated call; refuses a config that could not carry reviewqueue's answer."""
        reviews = []
        for interrupt in interrupts:
            value = interrupt.value
            if _is_per_call(interrupt):
                calls = [(value, _schema_decisions(interrupt.response_schema), value.get("tool_call_id"))]
            elif isinstance(value, Mapping) and "action_requests" in value:
                configs = list(value.get("review_configs") or [])
                calls = [
                    (request, configs[i].get("allowed_decisions") if i < len(configs) else None, None)
                    for i, request in enumerate(value["action_requests"])
                ]
            else:
                raise ValueError(f"Interrupt {interrupt.id} is not from HumanInTheLoopMiddleware: {value!r:.200}")
            for index, (request, listed, tool_call_id) in enumerate(calls):
                allowed = tuple(listed or ("approve", "edit", "reject"))
                if missing := [d for d in _NEEDED_DECISIONS if d not in allowed]:
                    raise ValueError(
                        f"Tool {request['name']!r} does not allow {missing} in interrupt_on, so reviewqueue's "
                        "answer could not be given: allow 'approve' and 'reject' (and 'edit' for reviewers' edits)."
                    )
                reviews.append(
                    ToolReview(
                        interrupt_id=interrupt.id,
                        index=index,
                        tool=request["name"],
                        args=dict(request.get("args") or {}),
                        description=str(request.get("description") or ""),
                        allowed_decisions=allowed,
                        tool_call_id=tool_call_id,
                        idempotency_key=idempotency_key(thread_id, interrupt.id, index),
                    )
                )
        return reviews

    def action_type(self, tool: str) -> str:
        return self.action_types.get(tool) or f"{self.action_type_prefix}{tool}"

    def _submission(self, review: ToolReview, thread_id: str) -> dict[str, Any]:
        """The submit call's arguments; everything in it is fixed by the checkpoint, so a re-run sends the same."""
        context: dict[str, Any] = {
            "source": "langchain.HumanInTheLoopMiddleware",
            "interrupt_id": review.interrupt_id,
            "index": review.index,
        }
        if review.tool_call_id:
            context["tool_call_id"] = review.tool_call_id
        return {
            "action_type": self.action_type(review.tool),
            "payload": _as_json(review.args),
            "summary": self._summary(review)[:_SUMMARY_LIMIT],
            "tool": review.tool if _TOOL.match(review.tool) else "",
            "conversation_id": str(thread_id)[:200],
            "context": context,
            "idempotency_key": review.idempotency_key,
        }

    def _summary(self, review: ToolReview) -> str:
        if self.summary is not None:
            return self.summary(review.tool, review.args, review.description)
        # The middleware's own description ("<prefix>\n\nTool: x\nArgs: {...}") says less than the args.
        if review.description and not review.description.endswith(f"\n\nTool: {review.tool}\nArgs: {review.args}"):
            return review.description
        args = ", ".join(f"{key}={json.dumps(value, default=str)}" for key, value in review.args.items())
        return f"{review.tool}: {args}" if args else review.tool

    def _refuse(self, review: ToolReview, err: errors.ReviewqueueError) -> None:
        review.error = err
        review.decision = {"type": "reject", "message": err.message_for_model}
        self._emit("refused", review)

    def _decide(self, review: ToolReview) -> None:
        """The middleware's decision for a final action."""
        if review.action is None:  # refused at submission: already decided
            return
        try:
            payload = review.action.executable_payload()  # raises unless may_execute; checks the SHA-256
        except errors.ActionNotApproved as err:
            review.error = err
            review.decision = {"type": "reject", "message": err.message_for_model}
        else:
            if payload == _as_json(review.args):
                review.decision = {"type": "approve"}
            elif "edit" in review.allowed_decisions:
                review.decision = {"type": "edit", "edited_action": {"name": review.tool, "args": payload}}
            else:
                message = (
                    f"Not done: a reviewer approved {review.tool} only with changed arguments "
                    f"{json.dumps(payload, default=str)}, and this agent does not accept edits for it."
                )
                review.error = errors.ReviewqueueError(message, code="edit_not_allowed")
                review.decision = {"type": "reject", "message": message}
        self._emit("decided", review)

    @staticmethod
    def _resolution(interrupts: Sequence[Any], reviews: list[ToolReview]) -> Resolution:
        resolution = Resolution(reviews=reviews)
        for interrupt in interrupts:
            mine = [review for review in reviews if review.interrupt_id == interrupt.id]
            if _is_per_call(interrupt):
                resolution.resume[interrupt.id] = mine[0].decision
            else:
                resolution.resume[interrupt.id] = {"decisions": [review.decision for review in mine]}
        return resolution

    def _emit(self, event: str, review: ToolReview) -> None:
        if self.on_event is not None:
            self.on_event(event, review)


def _is_per_call(interrupt: Any) -> bool:
    return isinstance(interrupt.value, Mapping) and interrupt.value.get("type") == "tool_approval"


def _schema_decisions(schema: Any) -> list[str] | None:
    """The decision types a per_call interrupt's response_schema (JSON schema) allows; None if unreadable."""
    if not isinstance(schema, Mapping):
        return None
    if isinstance(mapping := (schema.get("discriminator") or {}).get("mapping"), Mapping):
        return list(mapping)
    const = ((schema.get("properties") or {}).get("type") or {}).get("const")
    return [const] if isinstance(const, str) else None


def idempotency_key(thread_id: str, interrupt_id: str, index: int) -> str:
    """``langgraph:<thread>:<interrupt>:<index>``; a thread id the header can't carry is hashed."""
    thread = str(thread_id)
    if not _KEY_SAFE.match(thread):
        thread = "sha256-" + hashlib.sha256(thread.encode()).hexdigest()[:32]
    return f"langgraph:{thread}:{interrupt_id}:{index}"


def _as_json(args: Mapping[str, Any]) -> dict[str, Any]:
    """The args as the server will store them, so "approved unchanged" compares like with like."""
    result: dict[str, Any] = json.loads(json.dumps(dict(args), default=str))
    return result


# -- runners ---------------------------------------------------------------------------------------


def _thread_id(config: Mapping[str, Any]) -> str:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if thread_id is None:
        raise ValueError("config needs configurable.thread_id: the checkpointer keys the interrupts by it.")
    return str(thread_id)


def pending_interrupts(agent: Any, config: Mapping[str, Any]) -> tuple[Any, ...]:
    """The interrupts still waiting for an answer in this thread's checkpoint."""
    return tuple(agent.get_state(config).interrupts)


def resume_value(interrupt: Any, *, thread_id: str, client: Client | None = None, **options: Any) -> Any:
    """The resume value for one interrupt (``{"decisions": [...]}`` in batched mode); see InterruptResolver."""
    return InterruptResolver(client, **options).resume_value(interrupt, thread_id=thread_id)


def run(
    agent: Any,
    input: Any,
    config: Mapping[str, Any],
    *,
    client: Client | None = None,
    report_outcomes: bool = True,
    resolver: InterruptResolver | None = None,
    **options: Any,
) -> Any:
    """Invoke the agent and answer its interrupts through reviewqueue until it finishes; returns its output.

    ``input=None`` continues the thread from its checkpoint: after a crash, its pending interrupts are
    answered with the same idempotency keys, hence the same actions. ``report_outcomes`` reports each
    approved call's result (its ToolMessage: success or error) to reviewqueue. ``options`` go to
    InterruptResolver (action_types, action_type_prefix, summary, wait_timeout, on_event).
    """
    resolver = resolver or InterruptResolver(client, **options)
    thread_id = _thread_id(config)
    result = agent.invoke(input, config) if input is not None else None
    while True:
        state = agent.get_state(config)
        if not state.interrupts:
            return result if result is not None else state.values
        resolution = resolver.resolve(state.interrupts, thread_id=thread_id)
        result = agent.invoke(resolution.command, config)
        if report_outcomes:
            for review, message in _outcomes(resolution, state.values, agent.get_state(config).values):
                _report(review, message, resolver.client.report_outcome)


async def arun(
    agent: Any,
    input: Any,
    config: Mapping[str, Any],
    *,
    client: AsyncClient | None = None,
    report_outcomes: bool = True,
    resolver: InterruptResolver | None = None,
    **options: Any,
) -> Any:
    """Async ``run``: ``agent.ainvoke`` and an AsyncClient."""
    resolver = resolver or InterruptResolver(client, **options)
    thread_id = _thread_id(config)
    result = await agent.ainvoke(input, config) if input is not None else None
    while True:
        state = await agent.aget_state(config)
        if not state.interrupts:
            return result if result is not None else state.values
        resolution = await resolver.aresolve(state.interrupts, thread_id=thread_id)
        result = await agent.ainvoke(resolution.command, config)
        if report_outcomes:
            for review, message in _outcomes(resolution, state.values, (await agent.aget_state(config)).values):
                await _areport(review, message, resolver.async_client.report_outcome)


def _outcomes(
    resolution: Resolution, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[ToolReview, ToolMessage]]:
    """Each call that was allowed to run, with the ToolMessage its run produced.

    A batched interrupt names no tool-call ids: its calls are the paused AI message's, in order.
    """
    ai = next((m for m in reversed(before.get("messages", [])) if isinstance(m, AIMessage)), None)
    unclaimed = list(ai.tool_calls) if ai is not None else []
    results = {m.tool_call_id: m for m in after.get("messages", []) if isinstance(m, ToolMessage)}
    pairs = []
    for review in resolution.reviews:
        call_id = review.tool_call_id
        if call_id is None:
            call = next((c for c in unclaimed if c["name"] == review.tool and c["args"] == review.args), None)
            if call is not None:
                unclaimed.remove(call)
                call_id = call.get("id")
        message = results.get(call_id) if call_id else None
        if review.may_run and review.action is not None and message is not None:
            pairs.append((review, message))
    return pairs


def _outcome_fields(message: ToolMessage) -> dict[str, Any]:
    if message.status == "error":
        return {"status": "failed", "detail": str(message.content)[:1000], "error_kind": "tool_error"}
    return {"status": "succeeded", "detail": ""}


def _report(review: ToolReview, message: ToolMessage, report: Callable[..., Any]) -> None:
    """Once per action: a re-run after a crash gets 409 for a report already made, which is fine."""
    with contextlib.suppress(errors.Conflict):
        report(review.action.id, **_outcome_fields(message))  # type: ignore[union-attr]


async def _areport(review: ToolReview, message: ToolMessage, report: Callable[..., Any]) -> None:
    with contextlib.suppress(errors.Conflict):
        await report(review.action.id, **_outcome_fields(message))  # type: ignore[union-attr]
