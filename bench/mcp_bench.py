"""What the MCP gateway adds to a tool call, against reviewqueue as a user runs it.

Starts gunicorn as bench/submit_bench.py does (the README's settings for PostgreSQL and Redis, a trained
model) and an upstream MCP server (examples/mcp/shop_server.py), then times one call at a time, in
alternating rounds:

1. the tool called directly: a FastMCP client -> the upstream, over stdio;
2. the same call through the gateway: a FastMCP client -> reviewqueue-mcp -> the upstream, both hops over
   stdio (as a desktop client runs it), the call routed auto or async_review (forwarded at once): a submit,
   the forwarded call, and the outcome report (sent in the background, after the result);
3. a bare submit of the same action (AsyncClient.submit, what the gateway does first);
4. a bare submit and its outcome report, one after the other: the reviewqueue work behind each gateway
   call (the gateway sends the report in the background, after the result, so back to back it overlaps
   the next call on the server).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/reviewqueue_bench \\
    REDIS_URL=redis://127.0.0.1:6379/6 CELERY_BROKER_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/mcp_bench.py [--calls 200] [--rounds 4]

Target (issue 14): the gateway adds no more than 3 ms at p50 beyond the submit itself (gateway - direct -
submit), on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastmcp import Client as MCPClient
from fastmcp.client.transports import StdioTransport
from reviewqueue_client import AsyncClient

from bench.submit_bench import PY, ROOT, Server, fresh_database, sh, user_environment

SHOP = ROOT / "examples" / "mcp" / "shop_server.py"
ARGUMENTS = {"email": "jane@acme.example"}


def create_agent(env: dict[str, str]) -> str:
    """An agent whose limits stay out of the way (every call of a stdio session is one conversation)."""
    script = (
        "from reviewqueue.credentials.keys import agent_create\n"
        "print(agent_create(name='mcp-bench', scopes=['*'], actor='bench', rate_limit_per_minute=100_000_000,"
        " conversation_rate_limit_per_minute=100_000_000)[1])\n"
    )
    out = sh(PY, "manage.py", "shell", "-c", script, env=env, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


async def timed(fn: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await fn()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(base: str, key: str, config: Path, calls: int, rounds: int) -> tuple[dict[str, list[float]], str]:
    """The three paths' latencies (ms) and the tier the action routes to; stderr of the servers in config's folder."""
    logs = config.parent
    direct = MCPClient(StdioTransport(PY, [str(SHOP)], keep_alive=False, log_file=logs / "shop.log"))
    gateway = MCPClient(
        StdioTransport(
            PY,
            ["-m", "reviewqueue_client.mcp", "--config", str(config)],
            env={"REVIEWQUEUE_URL": base, "REVIEWQUEUE_API_KEY": key},
            keep_alive=False,
            log_file=logs / "gateway.log",
        )
    )
    rq = AsyncClient(base, key)
    body = {
        "action_type": "mcp.shop.lookup_customer",
        "payload": ARGUMENTS,
        "summary": f'lookup_customer on MCP server shop: Look up a customer\'s record by email. (email="{ARGUMENTS["email"]}")',
        "conversation_id": "mcp-bench",
    }
    async with direct, gateway, rq:
        routed = await rq.submit(**body)  # does the router let this action type through at once?
        if not routed.may_execute:
            sys.exit(f"mcp.shop.lookup_customer routes {routed.tier}, not forwarded at once: nothing to time")

        async def call_direct() -> None:
            assert not (await direct.call_tool("lookup_customer", ARGUMENTS)).is_error

        async def call_gateway() -> None:
            assert not (await gateway.call_tool("lookup_customer", ARGUMENTS)).is_error

        async def submit() -> None:
            assert (await rq.submit(**body, idempotency_key=f"rq-{uuid.uuid4()}")).may_execute

        async def submit_and_report() -> None:
            action = await rq.submit(**body, idempotency_key=f"rq-{uuid.uuid4()}")
            await rq.report_outcome(action.id, status="succeeded", detail="{}", duration_ms=1, attempt=1)

        paths = {"direct": call_direct, "gateway": call_gateway, "submit": submit, "submit+report": submit_and_report}
        for fn in paths.values():  # warm up each path
            await timed(fn, 30)
        routed = await rq.submit(**body, idempotency_key=f"rq-{uuid.uuid4()}")  # past the first sighting
        runs: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, fn in paths.items():
                runs[name] += await timed(fn, calls // rounds)
        await asyncio.sleep(1)  # the last outcome reports land
    return runs, routed.tier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200, help="calls per path, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    url = fresh_database()
    var = tempfile.mkdtemp(prefix="rq-mcp-bench-")
    env = user_environment(url, var, {})
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    sh(PY, "manage.py", "train_risk_model", "--if-missing", "--quiet", env=env)
    key = create_agent(env)
    config = Path(var) / "gateway.json"
    config.write_text(json.dumps({"mcpServers": {"shop": {"command": PY, "args": [str(SHOP)]}}}))
    server = Server(env)
    try:
        runs, tier = asyncio.run(measure(server.base, key, config, args.calls, args.rounds))
    finally:
        server.stop()

    each = args.calls // args.rounds
    print(f"one MCP client, one call at a time, {args.rounds} rounds of {each} calls per path, PostgreSQL and Redis")
    print(f"  {'':<62}{'p50 ms':>8}{'p99 ms':>8}")
    for name, label in (
        ("direct", "lookup_customer, client -> upstream (stdio)"),
        ("gateway", f"the same through reviewqueue-mcp (stdio x2, routed {tier})"),
        ("submit", "a bare submit of its action (AsyncClient.submit)"),
        ("submit+report", "a bare submit, then its outcome report"),
    ):
        print(f"  {label:<62}{statistics.median(runs[name]):>8.2f}{p(runs[name], 0.99):>8.2f}")
    added = statistics.median(runs["gateway"]) - statistics.median(runs["direct"])
    beyond = added - statistics.median(runs["submit"])
    report = statistics.median(runs["submit+report"]) - statistics.median(runs["submit"])
    print(f"  what the gateway adds to a call, p50: {added:.2f} ms; beyond the submit: {beyond:.2f} ms", end="")
    print(f" (target no more than 3 ms: {'met' if beyond <= 3 else 'MISSED'})")
    print(f"  the outcome report the gateway sends after each call costs the server {report:.2f} ms (p50 difference)")


if __name__ == "__main__":
    main()
