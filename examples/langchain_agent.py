"""A LangChain v1 agent whose gated tool calls are decided in reviewqueue.

Start the demo (``bin/run``), then, from the checkout:

    REVIEWQUEUE_URL=http://127.0.0.1:8000 REVIEWQUEUE_API_KEY=$(cat var/demo-agent.key) \\
        .venv/bin/python examples/langchain_agent.py

The model is scripted (no LLM, no API key): it looks up a contact, which reviewqueue lets run at once, then
asks to transfer $48,000, which waits for a reviewer: open the printed link and approve, edit the amount or
reject. The agent itself is stock LangChain: create_agent + HumanInTheLoopMiddleware + a checkpointer.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from reviewqueue_client import Client, errors
from reviewqueue_client.langchain import ToolReview, run

URL = os.environ.get("REVIEWQUEUE_URL", "http://127.0.0.1:8000").rstrip("/")
DEMO_KEY = Path(__file__).resolve().parent.parent / "var" / "demo-agent.key"  # what bin/run writes


class ScriptedModel(GenericFakeChatModel):
    """Plays back fixed turns; create_agent binds tools, which a script does not need."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


@tool
def lookup_contact(name: str) -> str:
    """Find a contact's bank account."""
    print(f"  RAN lookup_contact(name={name!r})")
    return f"{name}: account acct-991"


@tool
def transfer_money(to: str, amount: float, currency: str = "USD") -> str:
    """Transfer money to an account."""
    print(f"  RAN transfer_money(to={to!r}, amount={amount:g}, currency={currency!r})")
    return f"Sent {amount:,.2f} {currency} to {to}."


def show(event: str, review: ToolReview) -> None:
    """Print each step as reviewqueue answers it."""
    call = f"{review.tool}({json.dumps(review.args)})"
    action = review.action
    if event == "submitted" and action is not None:
        print(f"submitted {call} -> action {action.id}: tier {action.tier}, risk {action.risk.score:.2f}")
        if action.status == "pending":
            print(f"  waiting for a reviewer at {URL}/actions/{action.id}/")
    elif event == "refused":
        print(f"refused {call} at submission: {review.error}")
    elif event == "decided" and action is not None:
        by = ""
        if action.decision is not None:
            by = f" by {action.decision.by}" + (f" ({action.decision.note})" if action.decision.note else "")
        print(f"decision for {call}: {action.status}{by} -> {json.dumps(review.decision)}")


def main() -> int:
    api_key = os.environ.get("REVIEWQUEUE_API_KEY") or (DEMO_KEY.read_text().strip() if DEMO_KEY.exists() else "")
    if not api_key:
        print("Set REVIEWQUEUE_API_KEY (bin/run prints the demo agent's key and writes var/demo-agent.key).")
        return 2
    model = ScriptedModel(
        messages=iter(
            [
                AIMessage(
                    content="", tool_calls=[{"name": "lookup_contact", "args": {"name": "Dana"}, "id": "call-1"}]
                ),
                AIMessage(
                    content="",
                    tool_calls=[
                        {
                            "name": "transfer_money",
                            "args": {"to": "acct-991", "amount": 48000, "currency": "USD"},
                            "id": "call-2",
                        }
                    ],
                ),
                AIMessage(content="I have handled Dana's invoice as far as I was allowed to."),
            ]
        )
    )
    agent = create_agent(
        model,
        tools=[lookup_contact, transfer_money],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"lookup_contact": True, "transfer_money": True})],
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": f"example-{uuid.uuid4().hex[:8]}"}}
    print(f"reviewqueue at {URL}, thread {config['configurable']['thread_id']}")
    try:
        state = run(
            agent,
            {"messages": [{"role": "user", "content": "Pay Dana's invoice: $48,000."}]},
            config,
            client=Client(URL, api_key),
            action_types={"lookup_contact": "crm.contacts.lookup", "transfer_money": "payments.transfer"},
            on_event=show,
        )
    except errors.ReviewqueueError as err:
        print(f"stopped, nothing ran without approval: {err}")
        return 1
    print("what the model was told:")
    for message in state["messages"]:
        if isinstance(message, ToolMessage):
            print(f"  {message.name} [{message.status}]: {message.content}")
    print(f"agent: {state['messages'][-1].content}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
