"""The MCP approval gateway (reviewqueue_client.mcp): a real FastMCP client -> the gateway -> a real upstream
FastMCP server defined here, with the real reviewqueue server (live_server) behind it and a reviewer at the
desk. Over stdio (the gateway started as a desktop client starts it: `python -m reviewqueue_client.mcp`), over
streamable HTTP (the gateway and the upstream each served by uvicorn on loopback), and in process (FastMCP's
in-memory transport: a real MCP session without sockets).

The issue's scenarios: a lookup passes through at once; a transfer is held, a reviewer approves and the
upstream runs with the approved (edited) arguments; a rejection reaches the client as a tool error with the
reason and the upstream never runs; a kill switch refuses at once; a hold past the limit and a retry find the
same action; reviewqueue unreachable fails closed; malformed arguments get a clear error. Besides: tools/list
hides what the key may never call, a client that can show a link gets the action's page, several upstreams,
and bad configuration stops the command at start.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import uvicorn
from fastmcp import Client as MCPClient
from fastmcp import FastMCP
from fastmcp.client.elicitation import ElicitResult
from fastmcp.client.transports import StdioTransport
from fastmcp.exceptions import ToolError
from fastmcp.mcp_config import RemoteMCPServer
from reviewqueue_client import errors
from reviewqueue_client.mcp import Gateway, Settings, Upstream, load_settings

from reviewqueue.actions.kill_switches import kill_switch_set
from reviewqueue.models import Action, Status
from tests.clients.support import run_async
from tests.conftest import make_agent

pytestmark = pytest.mark.slow

LOOKUP = {"email": "jane@acme.example"}
TRANSFER = {"to": "acct-991", "amount": 48000, "currency": "USD"}
EMAIL = {"to": "all@acme.example", "subject": "Q3", "body": "Numbers attached."}


def make_upstream(ran: list[tuple[str, dict]]) -> FastMCP:
    """The upstream MCP server: each tool records that it ran, with what."""
    upstream = FastMCP("acme")

    @upstream.tool
    def lookup_customer(email: str) -> dict:
        """Look up a customer's record by email."""
        ran.append(("lookup_customer", {"email": email}))
        if email.startswith("nobody@"):
            raise ValueError(f"no customer {email}")
        return {"email": email, "name": "Jane Doe", "plan": "pro"}

    @upstream.tool
    def get_order(order_id: str) -> dict:
        """Get an order by its id."""
        ran.append(("get_order", {"order_id": order_id}))
        return {"id": order_id, "status": "shipped"}

    @upstream.tool
    def transfer_money(to: str, amount: float, currency: str = "USD") -> str:
        """Send money from the company account to another account."""
        ran.append(("transfer_money", {"to": to, "amount": amount, "currency": currency}))
        return f"sent {amount:g} {currency} to {to}"

    @upstream.tool
    def delete_backup(backup_id: str) -> str:
        """Delete a backup for good."""
        ran.append(("delete_backup", {"backup_id": backup_id}))
        return f"deleted {backup_id}"

    @upstream.tool
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an email to anyone."""
        ran.append(("send_email", {"to": to, "subject": subject, "body": body}))
        return f"sent to {to}"

    return upstream


class Served:
    """A FastMCP server on streamable HTTP in a thread of its own (its own event loop), on a free port."""

    def __init__(self, server: FastMCP):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        config = uvicorn.Config(server.http_app(path="/mcp"), log_level="warning", lifespan="on")
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(10)


@pytest.fixture
def ran() -> list[tuple[str, dict]]:
    return []


@pytest.fixture
def upstream_http(ran):
    served = Served(make_upstream(ran))
    yield served.url
    served.stop()


def gateway(rq, *upstreams: Upstream, url: str = "", key: str = "", hold: float = 20.0) -> Gateway:
    """A gateway in this process (settings as load_settings makes them)."""
    settings = Settings(
        url=url or rq.url, api_key=key or rq.key, upstreams=upstreams, hold_seconds=hold, progress_seconds=0.5
    )
    return Gateway(settings)


def acme(server: Any, hold: float = 20.0) -> Upstream:
    return Upstream("acme", "acme", server, hold_seconds=hold)


def call(gw: Gateway, name: str, arguments: dict, **options: Any):
    """Call one tool through the gateway from a client session of its own; the result (errors not raised)."""

    async def scenario():
        async with MCPClient(gw.server(), **options) as client:
            return await client.call_tool(name, arguments, raise_on_error=False)

    return run_async(scenario())


def text(result) -> str:
    return " ".join(block.text for block in result.content)


def outcome(rq, action_id: str, timeout: float = 10):
    """The action's outcome once the gateway's background report has landed."""
    client = rq.client()
    deadline = time.monotonic() + timeout
    while (action := client.get(action_id)).outcome is None:
        assert time.monotonic() < deadline, f"no outcome reported for {action_id}"
        time.sleep(0.05)
    return action.outcome


def the_action(action_type: str) -> Action:
    (action,) = Action.objects.filter(action_type=action_type)
    return action


# ------------------------------------------------------------------------------------------------ stdio ---


def test_over_stdio_a_lookup_passes_at_once_and_a_held_transfer_runs_with_the_reviewers_edit(
    rq, desk, ran, upstream_http, tmp_path
):
    config = tmp_path / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "reviewqueue": {"hold_seconds": 30, "progress_seconds": 0.5},
                "mcpServers": {"acme": {"url": upstream_http}},
            }
        )
    )
    transport = StdioTransport(
        command=sys.executable,
        args=["-m", "reviewqueue_client.mcp", "--config", str(config)],
        env={"REVIEWQUEUE_URL": rq.url, "REVIEWQUEUE_API_KEY": rq.key},
        keep_alive=False,
    )
    edited = {**TRANSFER, "amount": 4800}
    progress: list[str | None] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message)

    async def scenario():
        async with MCPClient(transport, progress_handler=on_progress, timeout=60) as client:
            started = time.perf_counter()
            lookup = await client.call_tool("lookup_customer", LOOKUP)
            took = time.perf_counter() - started
            desk.approve_next(edited_payload=edited)
            transfer = await client.call_tool("transfer_money", TRANSFER)
            return lookup, took, transfer

    lookup, took, transfer = run_async(scenario())
    desk.join()
    assert lookup.data["plan"] == "pro" and took < 2
    found = the_action("mcp.acme.lookup_customer")
    assert found.tier in ("auto", "async_review") and found.payload == LOOKUP
    assert "Look up a customer's record by email" in found.summary and "jane@acme.example" in found.summary
    assert transfer.data == "sent 4800 USD to acct-991"
    assert ran == [("lookup_customer", LOOKUP), ("transfer_money", edited)]
    held = the_action("mcp.acme.transfer_money")
    assert held.tier == "blocking" and held.payload == TRANSFER and desk.decided == [(str(held.pk), "approved")]
    assert held.conversation_id == found.conversation_id  # one client session, one conversation
    assert f"Waiting for a reviewer: {rq.url}/actions/{held.pk}/" in progress
    assert outcome(rq, str(found.pk)).status == "succeeded"
    reported = outcome(rq, str(held.pk))
    assert reported.status == "succeeded" and reported.duration_ms is not None


# -------------------------------------------------------------------------------------- streamable HTTP ---


def test_over_http_a_rejection_is_a_tool_error_with_the_reason_and_nothing_runs(rq, desk, ran, upstream_http):
    served = Served(gateway(rq, acme(RemoteMCPServer(url=upstream_http))).server())
    desk.reject_next("Backup bk-7 is the only copy of last quarter's ledger")

    async def scenario():
        async with MCPClient(served.url, timeout=60, mode="legacy") as client:  # as desktop clients connect
            with pytest.raises(ToolError) as refused:
                await client.call_tool("delete_backup", {"backup_id": "bk-7"})
            return str(refused.value)

    try:
        message = run_async(scenario())
    finally:
        served.stop()
    desk.join()
    assert "Reason: Backup bk-7 is the only copy of last quarter's ledger." in message and "Do not retry" in message
    assert ran == []
    action = the_action("mcp.acme.delete_backup")
    assert action.status == "rejected" and action.conversation_id.startswith("mcp-session:")


# ----------------------------------------------------------------------------------------------- in process ---


def test_an_upstream_failure_reaches_the_client_and_its_outcome_is_reported_failed(rq, ran):
    result = call(gateway(rq, acme(make_upstream(ran))), "lookup_customer", {"email": "nobody@acme.example"})
    assert result.is_error and "no customer nobody@acme.example" in text(result)
    reported = outcome(rq, str(the_action("mcp.acme.lookup_customer").pk))
    assert reported.status == "failed" and "no customer nobody@acme.example" in reported.detail


def test_a_kill_switch_refuses_at_once_and_halts_a_held_call_with_its_reason(rq, ran):
    kill_switch_set(scope="action_type:mcp.acme.send_email", engaged=True, reason="incident 42", actor="ops")
    started = time.perf_counter()
    refused = call(gateway(rq, acme(make_upstream(ran))), "send_email", EMAIL)
    assert time.perf_counter() - started < 3
    assert refused.is_error and "incident 42" in text(refused) and not Action.objects.exists()

    def engage_once_held() -> None:
        deadline = time.monotonic() + 20
        while not Action.objects.filter(status=Status.PENDING).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_switch_set(scope="global", engaged=True, reason="incident 43", actor="ops")

    ops = threading.Thread(target=engage_once_held)
    ops.start()
    halted = call(gateway(rq, acme(make_upstream(ran))), "transfer_money", TRANSFER)
    ops.join()
    assert halted.is_error and "halted" in text(halted) and "Reason: incident 43." in text(halted), text(halted)
    assert ran == []


def test_a_hold_past_the_limit_then_a_retry_find_the_same_action(rq, desk, ran):
    gw = gateway(rq, acme(make_upstream(ran), hold=1.0))

    async def scenario():
        async with MCPClient(gw.server()) as client:
            first = await client.call_tool("transfer_money", TRANSFER, raise_on_error=False)
            desk.approve_next()
            retry = await client.call_tool("transfer_money", TRANSFER, raise_on_error=False)
            return first, retry

    first, retry = run_async(scenario())
    desk.join()
    action = the_action("mcp.acme.transfer_money")  # one action, not two
    assert first.is_error and "Still waiting for a reviewer" in text(first) and "Nothing has run yet" in text(first)
    assert first.meta["reviewqueue"] == {
        "action_id": str(action.pk),
        "status": "pending",
        "tier": "blocking",
        "url": f"{rq.url}/actions/{action.pk}/",
    }
    assert not retry.is_error and text(retry) == "sent 48000 USD to acct-991"
    assert ran == [("transfer_money", TRANSFER)]
    assert outcome(rq, str(action.pk)).status == "succeeded"


def test_reviewqueue_unreachable_fails_closed(rq, ran):
    result = call(gateway(rq, acme(make_upstream(ran)), url="http://127.0.0.1:9"), "transfer_money", TRANSFER)
    assert result.is_error and text(result).startswith("Not done, nothing ran: reviewqueue at http://127.0.0.1:9")
    assert ran == []


def test_malformed_arguments_get_a_clear_error_before_anyone_reviews_them(rq, ran):
    gw = gateway(rq, acme(make_upstream(ran)))
    wrong_type = call(gw, "transfer_money", {**TRANSFER, "amount": "lots"})
    missing = call(gw, "transfer_money", {"amount": 10})
    unknown = call(gw, "transfer_money", {**TRANSFER, "memo": "x"})
    assert wrong_type.is_error and "amount: 'lots' is not of type 'number'" in text(wrong_type), text(wrong_type)
    assert missing.is_error and "'to' is a required property" in text(missing), text(missing)
    assert unknown.is_error and "'memo' was unexpected" in text(unknown), text(unknown)
    assert "Nothing was submitted for review and nothing ran" in text(missing)
    assert ran == [] and not Action.objects.exists()


def test_tools_list_hides_what_the_key_may_never_call(rq, ran):
    limited = make_agent("limited-bot", scopes=["mcp.acme.lookup_*", "mcp.acme.transfer_money"])

    async def scenario():
        async with MCPClient(gateway(rq, acme(make_upstream(ran)), key=limited.key).server()) as client:
            listed = {tool.name for tool in await client.list_tools()}
            hidden = await client.call_tool("delete_backup", {"backup_id": "bk-7"}, raise_on_error=False)
            return listed, hidden

    listed, hidden = run_async(scenario())
    assert listed == {"lookup_customer", "transfer_money"}
    assert hidden.is_error and "may not submit 'mcp.acme.delete_backup'" in text(hidden) and ran == []


def test_a_client_that_can_show_a_link_gets_the_actions_page_instead_of_a_held_call(rq, desk, ran):
    shown: list[str] = []

    async def show_the_link(message: str, response_type: Any, params: Any, context: Any) -> ElicitResult:
        shown.append(params.url)  # the user opens the page; a reviewer approves meanwhile
        desk.approve_next()
        return ElicitResult(action="accept")

    gw = gateway(rq, acme(make_upstream(ran)))
    result = call(gw, "transfer_money", TRANSFER, elicitation_handler=show_the_link)
    desk.join()
    action = the_action("mcp.acme.transfer_money")
    assert shown == [f"{rq.url}/actions/{action.pk}/"]
    assert not result.is_error and text(result) == "sent 48000 USD to acct-991"
    assert ran == [("transfer_money", TRANSFER)]


def test_several_upstreams_are_named_by_their_server(rq, ran):
    gw = gateway(rq, acme(make_upstream(ran)), Upstream("ops desk", "ops_desk", make_upstream(ran)))

    async def scenario():
        async with MCPClient(gw.server()) as client:
            listed = {tool.name for tool in await client.list_tools()}
            found = await client.call_tool("ops_desk_lookup_customer", LOOKUP)
            return listed, found

    listed, found = run_async(scenario())
    assert {"acme_lookup_customer", "ops_desk_lookup_customer", "ops_desk_send_email"} <= listed
    assert found.data["plan"] == "pro" and the_action("mcp.ops_desk.lookup_customer").payload == LOOKUP


def test_bad_configuration_stops_it_at_start_naming_the_field(rq, tmp_path):
    env = {"REVIEWQUEUE_URL": rq.url, "REVIEWQUEUE_API_KEY": rq.key}
    for config, field in (
        ({"reviewqueue": {"hold_seconds": "soon"}, "mcpServers": {"a": {"command": "x"}}}, "reviewqueue.hold_seconds"),
        ({"reviewqueue": {"hold": 5}, "mcpServers": {"a": {"command": "x"}}}, "reviewqueue.hold"),
        ({"mcpServers": {}}, "mcpServers"),
        ({"mcpServers": {"a": {"url": "ftp://x"}}}, "mcpServers.a.url"),
        ({"mcpServers": {"a": {"command": "x", "args": "not a list"}}}, "mcpServers.a.args"),
        ({"mcpServers": {"a": {"command": "x", "reviewqueue": {"context": 1}}}}, "mcpServers.a.reviewqueue.context"),
    ):
        with pytest.raises(errors.ConfigurationError, match=rf"^{field.replace('.', '[.]')}: "):
            load_settings(config, env=env)
    with pytest.raises(errors.ConfigurationError, match=r"^REVIEWQUEUE_API_KEY"):
        load_settings({"mcpServers": {"a": {"command": "x"}}}, env={"REVIEWQUEUE_URL": rq.url})

    path = tmp_path / "gateway.json"
    path.write_text(json.dumps({"mcpServers": {"acme": {"command": sys.executable, "args": ["-c", "pass"]}}}))
    started = subprocess.run(
        [sys.executable, "-m", "reviewqueue_client.mcp", "--config", str(path)],
        env={"REVIEWQUEUE_URL": rq.url, "REVIEWQUEUE_API_KEY": "rq_not_a_key", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert started.returncode == 2, started.stderr
    assert "bad configuration: REVIEWQUEUE_API_KEY" in started.stderr and "refused" in started.stderr
