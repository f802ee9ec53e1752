"""The OpenAI Agents SDK adapter against the real SDK and the real server.

A scripted agents.Model stands in for the LLM (no network, no key): it calls
the tools it was given, then answers with what the tools returned, so a test
sees exactly what the model was told. Tools record what ran, with which args.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import Agent, Model, ModelResponse, Runner, Usage, function_tool, set_tracing_disabled
from agents.testing import assistant_message, function_call
from django.utils import timezone
from reviewqueue_client import Client, errors
from reviewqueue_client.openai_agents import Approvals, saved_action_ids

from reviewqueue.models import Action as ActionRow
from tests.clients.support import run_async

set_tracing_disabled(True)

TRANSFER = {"to": "acct-991", "amount": 48000, "currency": "USD"}
HOOK = "https://agent.example/hooks/reviewqueue"


class ScriptedModel(Model):
    """First turn: the scripted tool calls. Next turns: a message quoting the tools' results."""

    def __init__(self, *calls: tuple[str, dict[str, Any], str]):
        self.calls = calls
        self.tool_results: list[str] = []
        self.told: dict[str, str] = {}  # call id -> the tool's result as the model saw it

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **_
    ):
        results = [i for i in input if isinstance(i, dict) and i.get("type") == "function_call_output"]
        if not results:
            output = [function_call(name, args, call_id=call_id) for name, args, call_id in self.calls]
        else:
            self.tool_results = [str(result["output"]) for result in results]
            self.told = {result["call_id"]: str(result["output"]) for result in results}
            output = [assistant_message(" | ".join(self.tool_results))]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("the tests run without streaming")


def payments_agent(approvals: Approvals, ran: list, *calls) -> tuple[Agent, ScriptedModel]:
    """A fresh agent, tools and model: what a new process would build."""

    @approvals.tool(action_type="crm.contacts.lookup")
    def lookup_contact(email: str) -> str:
        """Find a CRM contact by email."""
        ran.append(("lookup_contact", {"email": email}))
        return f"{email} is Ada Lovelace"

    @approvals.tool(action_type="payments.transfer", summary=lambda **kw: f"Transfer ${kw['amount']:,} to {kw['to']}")
    def transfer_money(to: str, amount: float, currency: str) -> str:
        """Move money to an account."""
        ran.append(("transfer_money", {"to": to, "amount": amount, "currency": currency}))
        return f"sent {amount:,.0f} {currency} to {to}"

    model = ScriptedModel(*calls)
    return Agent(name="payments", model=model, tools=[lookup_contact, transfer_money]), model


def transfer_call(args=TRANSFER, call_id="call_transfer_1"):
    return ("transfer_money", args, call_id)


@pytest.fixture
def approvals(rq):
    return Approvals(rq.client(), key_prefix="test")


def test_a_lookup_runs_at_once(rq, approvals):
    ran: list = []
    agent, model = payments_agent(approvals, ran, ("lookup_contact", {"email": "ada@example.com"}, "call_lookup"))

    result = run_async(Runner.run(agent, "Who is ada@example.com?"))

    assert result.interruptions == []
    assert ran == [("lookup_contact", {"email": "ada@example.com"})]
    assert model.tool_results == ["ada@example.com is Ada Lovelace"]
    action = ActionRow.objects.get()
    assert (action.action_type, action.payload) == ("crm.contacts.lookup", {"email": "ada@example.com"})
    assert action.tier in ("auto", "async_review")
    outcome = rq.client().get(str(action.pk)).outcome
    assert outcome is not None and outcome.status == "succeeded" and outcome.duration_ms is not None


def test_a_large_transfer_waits_for_the_desk_then_runs_as_approved(rq, approvals, desk):
    ran: list = []
    agent, model = payments_agent(approvals, ran, transfer_call())

    async def scenario():
        result = await Runner.run(agent, "Pay acct-991 $48,000")
        assert [item.tool_name for item in result.interruptions] == ["transfer_money"]
        assert ran == []  # held: nothing ran before a person decided
        action = rq.client().get(json.loads(await approvals.save(result))["held"][0]["action_id"])
        assert (action.status, action.tier, action.summary) == ("pending", "blocking", "Transfer $48,000 to acct-991")
        desk.approve_next()
        state = await approvals.resolve(result, timeout=30)
        return action.id, await Runner.run(agent, state)

    action_id, result = run_async(scenario())

    assert result.interruptions == []
    assert ran == [("transfer_money", {"to": "acct-991", "amount": 48000.0, "currency": "USD"})]
    assert model.tool_results == ["sent 48,000 USD to acct-991"]
    assert desk.decided == [(action_id, "approved")]
    assert rq.client().get(action_id).outcome.status == "succeeded"


def test_a_reviewers_edit_is_what_runs(rq, desk):
    ran: list = []
    approvals = Approvals(rq.async_client(), key_prefix="test")  # the asyncio client: awaited, not threaded
    agent, model = payments_agent(approvals, ran, transfer_call())
    desk.approve_next(edited_payload={"to": "acct-991", "amount": 4800, "currency": "USD"})

    result = run_async(approvals.run(agent, "Pay acct-991 $48,000", timeout=30))

    assert result.interruptions == []
    assert ran == [("transfer_money", {"to": "acct-991", "amount": 4800.0, "currency": "USD"})]
    assert model.tool_results == ["sent 4,800 USD to acct-991"]


def plain_tool(approvals: Approvals, ran: list):
    """A stock @function_tool with only the policy: the SDK runs the model's arguments itself."""

    @function_tool(needs_approval=approvals.needs_approval("pay_vendor", action_type="payments.transfer"))
    def pay_vendor(to: str, amount: float, currency: str) -> str:
        """Pay a vendor."""
        ran.append(("pay_vendor", {"to": to, "amount": amount, "currency": currency}))
        return f"paid {amount:,.0f} {currency} to {to}"

    return pay_vendor


def test_a_rejection_reaches_the_model_and_nothing_runs(rq, approvals, desk):
    ran: list = []
    agent, model = payments_agent(approvals, ran, transfer_call(), ("pay_vendor", TRANSFER, "call_vendor"))
    agent.tools.append(plain_tool(approvals, ran))
    desk.reject_next("Over the desk's limit: split it into two payments.")
    desk.reject_next("Over the desk's limit: split it into two payments.")

    result = run_async(approvals.run(agent, "Pay acct-991 $48,000 twice", timeout=30))

    assert ran == []
    assert len(model.tool_results) == 2
    for told in model.tool_results:
        assert "rejected" in told and "Over the desk's limit: split it into two payments." in told
    assert result.final_output == " | ".join(model.tool_results)
    assert sorted(ActionRow.objects.values_list("status", flat=True)) == ["rejected", "rejected"]


def test_a_plain_function_tool_never_runs_unedited_what_a_reviewer_edited(rq, approvals, desk):
    ran: list = []
    agent = Agent(name="payments", model=ScriptedModel(("pay_vendor", TRANSFER, "call_vendor")), tools=[])
    agent.tools.append(plain_tool(approvals, ran))
    desk.approve_next(edited_payload={**TRANSFER, "amount": 4800})

    run_async(approvals.run(agent, "Pay acct-991 $48,000", timeout=30))

    assert ran == []
    [told] = agent.model.tool_results
    assert "cannot run a reviewer's edit" in told and '"amount": 4800' in told


@pytest.mark.parametrize("refusal", ["kill_switch", "out_of_scope"])
def test_a_refused_call_never_runs(rq, refusal):
    from reviewqueue.actions import kill_switches
    from tests.conftest import make_agent

    if refusal == "kill_switch":
        kill_switches.kill_switch_set(scope="global", engaged=True, reason="incident 42", actor="ops")
        key, expected = rq.key, "kill switch"
    else:
        key, expected = make_agent("crm-only", scopes=["crm.*"]).key, "may not propose this action"
    ran: list = []
    approvals = Approvals(Client(rq.url, key), key_prefix="test")
    lookup = ("lookup_contact", {"email": "ada@example.com"}, "call_lookup")
    agent, model = payments_agent(approvals, ran, transfer_call(), lookup)

    run_async(approvals.run(agent, "Pay acct-991 $48,000 and look Ada up", timeout=30))

    told_transfer, told_lookup = model.told["call_transfer_1"], model.told["call_lookup"]
    assert expected in told_transfer.lower() and "not run" in told_transfer
    if refusal == "kill_switch":  # the global switch stops the lookup too
        assert ran == [] and told_lookup == told_transfer
    else:  # the agent's scopes cover lookups
        assert ran == [("lookup_contact", {"email": "ada@example.com"})]
    assert not ActionRow.objects.filter(action_type="payments.transfer", status__in=["pending", "approved"]).exists()


def test_the_same_call_after_a_crash_is_the_same_action(rq, desk):
    first_ran: list = []
    first, _ = payments_agent(Approvals(rq.client(), key_prefix="test"), first_ran, transfer_call())
    paused = run_async(Runner.run(first, "Pay acct-991 $48,000"))
    assert len(paused.interruptions) == 1 and ActionRow.objects.count() == 1
    # The process dies here. A new one (new client, tools, agent) re-runs the conversation: the model
    # makes the same call (the same call id), which finds the same action.
    again = Approvals(Client(rq.url, rq.key), key_prefix="test")
    ran: list = []
    agent, _ = payments_agent(again, ran, transfer_call())
    desk.approve_next()

    run_async(again.run(agent, "Pay acct-991 $48,000", timeout=30))

    assert ActionRow.objects.count() == 1
    assert first_ran == [] and len(ran) == 1
    assert desk.decided == [(str(ActionRow.objects.get().pk), "approved")]


def test_an_unreachable_server_is_a_clear_error_and_nothing_runs():
    ran: list = []
    approvals = Approvals(Client("http://127.0.0.1:9", "rq_key", max_retries=0), key_prefix="test")
    agent, _ = payments_agent(approvals, ran, transfer_call(), ("lookup_contact", {"email": "a@b.c"}, "call_lookup"))

    with pytest.raises(errors.ServiceUnavailable, match="could not be reached") as raised:
        run_async(approvals.run(agent, "Pay acct-991 $48,000"))

    assert ran == []
    assert "Nothing ran" in str(raised.value)


def test_a_saved_run_resumes_from_the_webhook_in_a_fresh_runner(rq, desk):
    from reviewqueue.models import OutboxMessage
    from reviewqueue.notify import outbox

    first = Approvals(rq.client(), key_prefix="test", callback_url=HOOK)
    agent, _ = payments_agent(first, [], transfer_call())
    saved = run_async(first.save(run_async(Runner.run(agent, "Pay acct-991 $48,000"))))
    [action_id] = saved_action_ids(saved)
    assert json.loads(saved)["held"][0]["key"] == "test:transfer_money:call_transfer_1"  # JSON text to store

    # A fresh process: new client, tools, agent and model; only the saved text and the delivery.
    ran: list = []
    fresh = Approvals(Client(rq.url, rq.key), key_prefix="test", callback_url=HOOK)
    agent, model = payments_agent(fresh, ran, transfer_call())
    assert run_async(fresh.resume(agent, saved, {"id": action_id, "status": "pending"})) is None  # not decided yet

    desk.approve_next(edited_payload={"to": "acct-991", "amount": 40000, "currency": "USD"})
    desk.join()
    message = OutboxMessage.objects.filter(kind=outbox.AGENT_WEBHOOK, action_id=action_id).order_by("pk").last()
    body = json.dumps(message.body, separators=(",", ":"), ensure_ascii=False).encode()
    headers = outbox.signature_headers(message, body, timezone.now())
    secret = rq.agent.webhook_secret

    with pytest.raises(errors.ReviewqueueError, match="signature"):
        run_async(fresh.resume(agent, saved, body.replace(b"acct-991", b"acct-666"), headers=headers, secret=secret))
    result = run_async(fresh.resume(agent, saved, body, headers=headers, secret=secret))

    assert result is not None and result.interruptions == []
    assert ran == [("transfer_money", {"to": "acct-991", "amount": 40000.0, "currency": "USD"})]
    assert model.tool_results == ["sent 40,000 USD to acct-991"]
    assert rq.client().get(action_id).outcome.status == "succeeded"

    # A second delivery (the webhook's retry) resumes the same saved run again: the transfer does not run twice.
    again = run_async(fresh.resume(agent, saved, body, headers=headers, secret=secret))
    assert again is not None and len(ran) == 1
    assert model.tool_results[0].startswith("Already done: this call ran before (succeeded")
