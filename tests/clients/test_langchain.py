"""LangChain v1's stock HumanInTheLoopMiddleware answered by reviewqueue: a real create_agent graph with an
InMemorySaver, the real server (live_server), a reviewer at the real decision path, and a scripted model."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field
from reviewqueue_client import Client, errors
from reviewqueue_client.langchain import InterruptResolver, arun, resume_value, run

from reviewqueue.models import Action, IdempotencyKey
from tests.clients.support import run_async

ACTION_TYPES = {"transfer_money": "payments.transfer", "lookup_contact": "crm.contacts.lookup"}
BIG = {"to": "acct-991", "amount": 48000, "currency": "USD"}


class ScriptedModel(GenericFakeChatModel):
    """Emits the scripted turns and keeps what it was shown, so a test can read the ToolMessages it got."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)

    def tool_results(self) -> list[ToolMessage]:
        """The ToolMessages in the last prompt the model got."""
        return [m for m in self.seen[-1] if isinstance(m, ToolMessage)]


def call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id}


class Bench:
    """An agent as a LangChain user builds it, with tools that record what ran and with which args."""

    def __init__(self, *tool_calls: dict[str, Any], mode: str = "batched", checkpointer: Any = None):
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.checkpointer = checkpointer or InMemorySaver()
        self.config = {"configurable": {"thread_id": "thread-7"}}
        self.model = ScriptedModel(messages=iter([AIMessage(content="", tool_calls=list(tool_calls)), "Done."]))
        self.agent = self.build(mode)

    def build(self, mode: str = "batched") -> Any:
        ran = self.ran

        @tool
        def transfer_money(to: str, amount: float, currency: str = "USD") -> str:
            """Move money to an account."""
            ran.append(("transfer_money", {"to": to, "amount": amount, "currency": currency}))
            return f"sent {amount:g} {currency} to {to}"

        @tool
        def lookup_contact(name: str) -> str:
            """Find a contact's account."""
            ran.append(("lookup_contact", {"name": name}))
            return f"{name}: acct-991"

        hitl = HumanInTheLoopMiddleware(
            interrupt_on={"transfer_money": True, "lookup_contact": True}, interrupt_mode=mode
        )
        return create_agent(
            self.model, tools=[transfer_money, lookup_contact], middleware=[hitl], checkpointer=self.checkpointer
        )

    def start(self) -> Any:
        return self.agent.invoke({"messages": [{"role": "user", "content": "Pay Dana's invoice"}]}, self.config)

    def run(self, client: Client, **options: Any) -> Any:
        return run(
            self.agent,
            {"messages": [{"role": "user", "content": "Pay Dana's invoice"}]},
            self.config,
            client=client,
            action_types=ACTION_TYPES,
            **options,
        )


def test_a_lookup_runs_at_once_without_a_reviewer(rq, desk):
    bench = Bench(call("lookup_contact", {"name": "Dana"}, "c1"))
    events: list[tuple[str, str]] = []

    state = bench.run(rq.client(), on_event=lambda event, review: events.append((event, review.action.status)))

    assert bench.ran == [("lookup_contact", {"name": "Dana"})]
    assert state["messages"][-1].content == "Done."
    action = Action.objects.get()
    assert action.tier in ("auto", "async_review")
    assert (action.action_type, action.tool, action.conversation_id) == (
        "crm.contacts.lookup",
        "lookup_contact",
        "thread-7",
    )
    assert action.payload == {"name": "Dana"}
    assert events == [("submitted", "approved"), ("decided", "approved")]  # never pending: nobody was asked
    assert desk.decided == []
    assert rq.client().get(str(action.pk)).outcome.status == "succeeded"


def test_a_large_transfer_waits_for_the_desk_and_runs_as_approved(rq, desk):
    bench = Bench(call("transfer_money", BIG, "c1"))
    statuses: list[tuple[str, str]] = []

    desk.approve_next()
    bench.run(rq.client(), on_event=lambda event, review: statuses.append((event, review.action.status)))

    assert statuses == [("submitted", "pending"), ("decided", "approved")]
    assert bench.ran == [("transfer_money", BIG)]
    action = Action.objects.get()
    assert (action.tier, action.status, action.summary) == (
        "blocking",
        "approved",
        'transfer_money: to="acct-991", amount=48000, currency="USD"',
    )
    assert desk.decided == [(str(action.pk), "approved")]
    assert bench.model.tool_results()[0].content == "sent 48000 USD to acct-991"
    assert rq.client().get(str(action.pk)).outcome.status == "succeeded"


def test_the_reviewers_edit_is_what_runs(rq, desk):
    bench = Bench(call("transfer_money", BIG, "c1"))

    desk.approve_next(edited_payload={**BIG, "amount": 4800})
    bench.run(rq.client())

    assert bench.ran == [("transfer_money", {**BIG, "amount": 4800})]
    result = bench.model.tool_results()[0].content
    assert "a human reviewer replaced this tool call" in result
    assert result.endswith("sent 4800 USD to acct-991")


def test_a_rejection_reaches_the_model_with_the_reason_and_nothing_runs(rq, desk):
    bench = Bench(call("transfer_money", BIG, "c1"))

    desk.reject_next("Vendor bank details changed yesterday; call them first.")
    bench.run(rq.client())

    assert bench.ran == []
    (result,) = bench.model.tool_results()
    assert result.status == "error"
    assert "Vendor bank details changed yesterday; call them first." in result.content
    assert "Do not retry the same action" in result.content
    assert Action.objects.get().status == "rejected"


def test_an_engaged_kill_switch_runs_nothing_and_says_why(rq, desk):
    from reviewqueue.actions import kill_switches

    kill_switches.kill_switch_set(scope="global", engaged=True, reason="incident 42", actor="ops")
    bench = Bench(call("transfer_money", BIG, "c1"))
    refused: list[BaseException] = []

    bench.run(rq.client(), on_event=lambda event, review: refused.append(review.error) if event == "refused" else None)

    assert bench.ran == []
    assert [type(err) for err in refused] == [errors.KillSwitchEngaged]
    (result,) = bench.model.tool_results()
    assert result.status == "error"
    assert "kill switch" in result.content.lower() and "incident 42" in result.content
    assert not Action.objects.filter(status="pending").exists()


def test_a_crashed_run_finds_its_action_again(rq, desk):
    """A process dies while the desk decides; a new one re-reads the checkpoint and answers the same interrupt."""
    checkpointer = InMemorySaver()
    bench = Bench(call("transfer_money", BIG, "c1"), checkpointer=checkpointer)
    bench.start()
    (interrupt,) = bench.agent.get_state(bench.config).interrupts

    first = InterruptResolver(rq.client(), action_types=ACTION_TYPES, wait_timeout=0.5)
    with pytest.raises(errors.StillPending):
        first.resume_value(interrupt, thread_id="thread-7")  # the process "dies" here, nothing ran

    # A fresh process: new client, new agent object on the same checkpoint, same interrupt id.
    bench.agent = bench.build()
    (reread,) = bench.agent.get_state(bench.config).interrupts
    assert reread.id == interrupt.id
    desk.approve_next()
    run(bench.agent, None, bench.config, client=rq.client(), action_types=ACTION_TYPES, wait_timeout=15)  # resume
    again = resume_value(reread, thread_id="thread-7", client=rq.client(), action_types=ACTION_TYPES)

    assert again == {"decisions": [{"type": "approve"}]}
    assert Action.objects.count() == 1
    key = IdempotencyKey.objects.get()
    assert (key.key, key.action_id) == (f"langgraph:thread-7:{interrupt.id}:0", Action.objects.get().pk)
    assert bench.ran == [("transfer_money", BIG)]


def test_an_unreachable_service_fails_closed(db):
    bench = Bench(call("transfer_money", BIG, "c1"))

    with pytest.raises(errors.ServiceUnavailable) as caught:
        bench.run(Client("http://127.0.0.1:9", "rq_nokey", max_retries=0, timeout=2))

    assert "Nothing ran" in str(caught.value)
    assert bench.ran == []
    assert bench.agent.get_state(bench.config).interrupts  # still paused: a later run answers the same interrupt
    assert not Action.objects.exists()


def test_a_batch_is_submitted_whole_then_one_approved_one_rejected(rq, desk):
    second = {"to": "acct-992", "amount": 52000, "currency": "USD"}
    bench = Bench(call("transfer_money", BIG, "c1"), call("transfer_money", second, "c2"))
    events: list[tuple[str, int]] = []

    desk.approve_next()  # the desk takes the oldest pending first: the first call
    desk.reject_next("Duplicate of the first payment.")
    bench.run(rq.client(), on_event=lambda event, review: events.append((event, review.index)))

    assert events == [("submitted", 0), ("submitted", 1), ("decided", 0), ("decided", 1)]
    assert bench.ran == [("transfer_money", BIG)]
    results = {m.tool_call_id: m for m in bench.model.tool_results()}
    assert results["c1"].content == "sent 48000 USD to acct-991"
    assert results["c2"].status == "error" and "Duplicate of the first payment." in results["c2"].content
    assert sorted(Action.objects.values_list("status", flat=True)) == ["approved", "rejected"]


def test_per_call_interrupts_are_answered_by_id(rq, desk):
    bench = Bench(call("transfer_money", BIG, "c1"), call("lookup_contact", {"name": "Dana"}, "c2"), mode="per_call")

    desk.reject_next("Not this week.")
    bench.run(rq.client())

    assert bench.ran == [("lookup_contact", {"name": "Dana"})]
    results = {m.tool_call_id: m for m in bench.model.tool_results()}
    assert "Not this week." in results["c1"].content
    assert results["c2"].content == "Dana: acct-991"
    contexts = {a.action_type: a.context["tool_call_id"] for a in Action.objects.all()}
    assert contexts == {"payments.transfer": "c1", "crm.contacts.lookup": "c2"}


def test_async_run_with_the_async_client(rq, desk):
    bench = Bench(call("transfer_money", BIG, "c1"))

    async def go() -> Any:
        async with rq.async_client() as client:
            return await arun(
                bench.agent,
                {"messages": [{"role": "user", "content": "Pay"}]},
                bench.config,
                client=client,
                action_types=ACTION_TYPES,
            )

    desk.approve_next(edited_payload={**BIG, "amount": 4800})
    state = run_async(go())

    assert bench.ran == [("transfer_money", {**BIG, "amount": 4800})]
    assert state["messages"][-1].content == "Done."
    assert rq.client().get(str(Action.objects.get().pk)).outcome.status == "succeeded"
