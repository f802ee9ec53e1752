"""The Python client against the demo that `bin/run` starts: no API key, no model.

    export REVIEWQUEUE_URL=http://127.0.0.1:8000
    export REVIEWQUEUE_API_KEY=$(cat var/demo-agent.key)    # printed by bin/run too
    .venv/bin/python examples/client_quickstart.py

A contact lookup runs at once; a $48,000 transfer waits until you approve,
edit or reject it in the dashboard (the script prints the link).
"""

import os

from reviewqueue_client import Client, errors, gate

client = Client()  # REVIEWQUEUE_URL and REVIEWQUEUE_API_KEY
conversation = f"quickstart-{os.getpid()}"


@gate("crm.contacts.lookup", client=client, tool="hubspot.contacts.search", conversation_id=conversation)
def lookup(query: str, limit: int = 5) -> str:
    return f"1 contact matches {query!r}"


def transfer(to: str, amount: int, currency: str) -> str:
    return f"sent {amount:,} {currency} to {to}"


print("1. lookup ->", lookup(query="jane@acme.example"))

proposed = {"to": "acct-991", "amount": 48000, "currency": "USD"}
action = client.submit(
    action_type="payments.transfer",
    tool="bank.transfers.create",
    payload=proposed,
    summary="Transfer $48,000 to supplier account acct-991",
    rationale="Invoice INV-2210 is due today.",
    conversation_id=conversation,
    idempotency_key=f"transfer:INV-2210:{conversation}",  # a re-run finds this same action
)
print(f"2. transfer -> {action.status} ({action.tier}, risk {action.risk.score}: {'; '.join(action.risk.reasons[:2])})")
if not action.is_final:
    print(f"   waiting for a reviewer: {client.url}/actions/{action.id}/")
    action = client.wait(action.id)
try:
    approved = action.executable_payload()
except errors.ActionNotApproved as refused:
    print(f"   not run: {refused.message_for_model}")
else:
    if approved != proposed:
        print(f"   a reviewer edited it: {proposed} -> {approved}")
    print("   ran:", transfer(**approved))
    client.report_outcome(action.id, status="succeeded", duration_ms=1)
