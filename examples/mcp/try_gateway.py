"""The reviewqueue MCP gateway from an MCP client's side, against the demo.

Start the demo (``bin/run``), then, from the checkout:

    .venv/bin/python examples/mcp/try_gateway.py

This is what a desktop MCP client does with claude_desktop_config.json: it starts ``reviewqueue-mcp --config
examples/mcp/gateway.json`` over stdio (the gateway starts shop_server.py behind it), lists the tools and calls
two: a customer lookup, which reviewqueue lets run at once, and a $48,000 transfer, which the gateway holds
(with progress notifications carrying the action's link) until someone decides: open the printed link and
approve, edit the amount or reject. Past the hold limit (50 s) the gateway answers "still pending"; the script
then calls again with the same arguments, which finds the same action. (Each gateway process is a conversation
of its own, so every run of this script makes new actions.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from fastmcp import Client
from fastmcp.client.transports import StdioTransport

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_KEY = ROOT / "var" / "demo-agent.key"  # what bin/run writes


async def on_progress(done: float, total: float | None, message: str | None) -> None:
    print(f"   … {done:>4.0f}/{total or 0:.0f} s  {message}")


async def main() -> None:
    key = os.environ.get("REVIEWQUEUE_API_KEY") or (DEMO_KEY.read_text().strip() if DEMO_KEY.exists() else "")
    env = {"REVIEWQUEUE_API_KEY": key, "REVIEWQUEUE_URL": os.environ.get("REVIEWQUEUE_URL", "http://127.0.0.1:8000")}
    gateway = StdioTransport(
        sys.executable,
        ["-m", "reviewqueue_client.mcp", "--config", str(ROOT / "examples/mcp/gateway.json")],
        env=env,
    )
    async with Client(gateway, progress_handler=on_progress, timeout=120) as client:
        print(
            "1. tools/list (what the agent key's scopes allow):", ", ".join(t.name for t in await client.list_tools())
        )

        print("2. lookup_customer: a read, forwarded at once")
        found = await client.call_tool("lookup_customer", {"email": "jane@acme.example"})
        print(f"   -> {found.data}")

        transfer = {"to": "acct-991", "amount": 48000, "currency": "USD"}
        print(f"3. transfer_money {transfer}: held for a reviewer (open the link below and decide)")
        while True:
            result = await client.call_tool("transfer_money", transfer, raise_on_error=False)
            pending = (result.meta or {}).get("reviewqueue", {}).get("status") == "pending"
            print(f"   -> {'error: ' if result.is_error else ''}{' '.join(b.text for b in result.content)}")
            if not pending:
                break
            print("   still pending: calling again with the same arguments (the same action)")


if __name__ == "__main__":
    asyncio.run(main())
