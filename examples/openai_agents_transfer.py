"""An OpenAI Agents SDK agent whose risky tool calls are decided in reviewqueue.

Start the demo (``bin/run``), then, from the checkout:

    REVIEWQUEUE_URL=http://127.0.0.1:8000 REVIEWQUEUE_API_KEY=$(cat var/demo-agent.key) \\
        .venv/bin/python examples/openai_agents_transfer.py

The model is scripted (no LLM, no API key): it looks up a contact, which reviewqueue lets run at once, and
asks to transfer $48,000, which pauses the run until a reviewer decides: open the printed link and
approve, edit the amount or reject. The paused run is saved as JSON and resumed by a fresh Approvals and
agent from the decided action's JSON, as a webhook handler would (here the script long-polls instead of
receiving the webhook, so the demo needs no public URL).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
from agents.testing import assistant_message, function_call
from reviewqueue_client import Client
from reviewqueue_client.openai_agents import Approvals, saved_action_ids

DEMO_KEY = Path(__file__).resolve().parent.parent / "var" / "demo-agent.key"  # what bin/run writes
RUN = uuid.uuid4().hex[:8]  # this run's calls are new actions, however often the demo runs

set_tracing_disabled(True)  # no OpenAI key: keep traces local


class ScriptedModel(Model):
    """Asks for both tools on its first turn, then reports what the tools said."""

    async def get_response(
        self, system_instructions, input, model_settings, tools, output_schema, handoffs, tracing, **_
    ):
        results = [i["output"] for i in input if isinstance(i, dict) and i.get("type") == "function_call_output"]
        if results:
            return ModelResponse(
                output=[assistant_message(" / ".join(map(str, results)))], usage=Usage(), response_id=None
            )
        calls = [
            function_call("lookup_contact", {"name": "Acme Supplies"}, call_id=f"call-lookup-{RUN}"),
            function_call(
                "transfer_money", {"to": "acct-991", "amount": 48000, "currency": "USD"}, call_id=f"call-pay-{RUN}"
            ),
        ]
        return ModelResponse(output=calls, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any):
        raise NotImplementedError


def build(approvals: Approvals) -> Agent:
    """The agent and its tools; a process resuming a saved run builds the same."""

    @approvals.tool(action_type="crm.contacts.lookup", tool="hubspot.contacts.search")
    def lookup_contact(name: str) -> str:
        """Find a contact's bank account."""
        print(f"  RAN lookup_contact(name={name!r})")
        return f"{name}: account acct-991"

    @approvals.tool(
        action_type="payments.transfer",
        tool="bank.transfers.create",
        summary=lambda **kw: f"Transfer ${kw['amount']:,} to {kw['to']}",
        rationale="Invoice INV-2210 is due today.",
    )
    def transfer_money(to: str, amount: float, currency: str) -> str:
        """Transfer money to an account."""
        print(f"  RAN transfer_money(to={to!r}, amount={amount:g}, currency={currency!r})")
        return f"Sent {amount:,.2f} {currency} to {to}."

    return Agent(
        name="payments",
        instructions="Pay supplier invoices.",
        model=ScriptedModel(),
        tools=[lookup_contact, transfer_money],
    )


def client() -> Client:
    key = os.environ.get("REVIEWQUEUE_API_KEY") or (DEMO_KEY.read_text().strip() if DEMO_KEY.exists() else None)
    return Client(os.environ.get("REVIEWQUEUE_URL", "http://127.0.0.1:8000"), key)


async def main() -> None:
    rq = client()
    approvals = Approvals(rq, key_prefix=f"example-{RUN}", conversation_id=f"openai-agents-{RUN}")
    agent = build(approvals)

    print("1. Runner.run: the model asks for a lookup and a $48,000 transfer")
    result = await Runner.run(agent, "Pay Acme Supplies' invoice INV-2210 ($48,000).")
    for item in result.interruptions:
        print(f"   held for review: {item.tool_name}({item.arguments})")
    if not result.interruptions:
        print(f"   nothing held; the model says: {result.final_output}")
        return

    print("2. save the paused run (RunState JSON + action ids), as a server would before answering its user")
    saved = await approvals.save(result)
    for action_id in saved_action_ids(saved):
        action = rq.get(action_id)
        print(f"   action {action.id}: {action.status}, {action.tier}, risk {action.risk.score:.2f} ({action.summary})")
        print(f"   decide it here: {rq.url}/actions/{action.id}/")

    print("3. wait for the decision (a webhook handler would be called instead)")
    decided = [await asyncio.to_thread(rq.wait, action_id) for action_id in saved_action_ids(saved)]
    for action in decided:
        by = f" by {action.decision.by}" if action.decision else ""
        edit = f", edited to {action.approved_payload}" if action.edited else ""
        print(f"   {action.id}: {action.status}{by}{edit}")

    print("4. resume in a fresh Approvals + agent from the saved JSON and the action's JSON")
    fresh = Approvals(client(), key_prefix=f"example-{RUN}", conversation_id=f"openai-agents-{RUN}")
    resumed = await fresh.resume(build(fresh), saved, decided[-1].model_dump_json())
    assert resumed is not None  # every held call is decided by now
    print(f"5. the model says: {resumed.final_output}")


if __name__ == "__main__":
    asyncio.run(main())
