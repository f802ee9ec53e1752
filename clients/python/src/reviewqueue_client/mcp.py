"""reviewqueue in front of any MCP server: ``reviewqueue-mcp``, an approval gateway.

An MCP client (an agent, an IDE, a desktop assistant) talks to the gateway as to any MCP server; the gateway
proxies one or more upstream servers (stdio or HTTP) with FastMCP's proxy, and its middleware sends every
``tools/call`` through reviewqueue first. Configure it with a standard ``mcpServers`` file plus a
``reviewqueue`` section (keep the key in the environment)::

    {"reviewqueue": {"url": "http://127.0.0.1:8000", "hold_seconds": 50},
     "mcpServers": {"bank": {"command": "python", "args": ["bank_server.py"]}}}

    REVIEWQUEUE_API_KEY=... reviewqueue-mcp --config gateway.json              # stdio
    REVIEWQUEUE_API_KEY=... reviewqueue-mcp --config gateway.json --transport http --port 8765

Settings: ``reviewqueue.url`` / REVIEWQUEUE_URL, ``api_key`` / REVIEWQUEUE_API_KEY, ``hold_seconds`` /
REVIEWQUEUE_MCP_HOLD_SECONDS (50), ``progress_seconds`` (5), ``dashboard_url`` (for links; default the url),
``transport`` / REVIEWQUEUE_MCP_TRANSPORT, ``host``, ``port``, ``path``; per server, under its own
``reviewqueue`` key, ``context`` and ``hold_seconds``. The environment wins over the file, the command line over
both; a wrong or missing setting stops the gateway at start, naming it (GatewayConfigurationError), and so
does a key reviewqueue refuses. A stdio server without ``cwd`` starts in the config file's folder. With one
upstream its tools keep their names; with several they are ``<server>_<tool>``. HTTP listens on loopback by
default and has no authentication of its own: whoever reaches it acts with the gateway's key.

Mapping:

- one ``tools/call`` -> one action: ``action_type`` ``mcp.<server>.<tool>`` (names reduced to letters, digits,
  ``_`` and ``-``), ``payload`` = the arguments (checked against the tool's input schema first, so malformed
  ones never reach a reviewer; top-level defaults filled in, so the reviewer sees what will run), ``summary``
  from the tool's description and the arguments, ``conversation_id`` = the MCP session (see _conversation),
  ``context`` = the server's configured context. That is the only "tier hint": reviewqueue's router decides
  and a gateway can't lower a tier; the upstream's own annotations are not forwarded, as an upstream could
  claim ``readOnlyHint`` to dodge review. ``tool`` is left empty, so a scope such as ``mcp.bank.*`` covers
  the call (a scope must cover both names);
- auto / async_review: forwarded at once. blocking: held, with an MCP progress notification every few seconds
  (the action's link in its message), up to ``hold_seconds``; then an error result says it is still pending
  and to call again with the same arguments, which finds the same action (``_meta["reviewqueue"]`` has its
  id, status and link). A client on the 2026-07-28 protocol that declares URL elicitation gets the action's
  page instead (an InputRequiredResult, SEP-2322); its retry with the answer is then held as above;
- approved: forwarded with ``executable_payload()`` (a reviewer's edit, SHA-256 checked); the outcome
  (succeeded/failed, duration, the upstream's error) is reported in the background, after the result is
  returned, and drained at shutdown;
- rejected, expired, halted, cancelled, a kill switch, out of scope, rate limited: a tool error whose text is
  the reason (``message_for_model``, or the kill switch's reason); the upstream never runs;
- ``tools/list`` hides the tools whose action type the key's scopes never allow (``POST /agent/scopes``); with
  reviewqueue away it lists them all (calls fail closed anyway, and an empty list would hide the problem);
- reviewqueue unreachable: every call fails closed with a tool error; nothing runs upstream.

The same call: the Idempotency-Key is ``mcp:<sha256 of (conversation, server, tool, arguments)>:<n>``. MCP has
no call id that survives a retry (a JSON-RPC id is per request, and a model's tool-call id never reaches the
server), so what the client sends is what identifies it. An identical call finds the open action (pending,
approved and not yet run, or running: it then shares that run's result) until the action is used: it ran (its
outcome is reported) or its refusal was returned. The next identical call is then a new action (``n+1``) that
a reviewer sees afresh. The gateway remembers ``n`` per call (bounded); after a restart it walks the
generations again, skipping those that ran (a refusal returned before the restart is returned once more). No
time bucket: a retry after the hold limit may come minutes later and must not land in the next bucket as a
second action.

Upstream sessions: FastMCP's proxy connects afresh for every request (about 20 ms over HTTP), so the gateway
keeps connected sessions, one per call in flight (_Sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import logging
import math
import os
import re
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import mcp_types
from fastmcp import FastMCP
from fastmcp.client.transports import ClientTransport, FastMCPTransport
from fastmcp.exceptions import ToolError
from fastmcp.mcp_config import RemoteMCPServer, StdioMCPServer
from fastmcp.server.context import Context
from fastmcp.server.dependencies import get_context
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.providers.proxy import FastMCPProxy, StatefulProxyClient
from fastmcp.tools.base import InputRequiredToolResult, Tool, ToolResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from reviewqueue_client import errors
from reviewqueue_client._canonical import sha256_hex
from reviewqueue_client.client import AsyncClient
from reviewqueue_client.models import Action

__all__ = ["Gateway", "GatewayConfigurationError", "Settings", "Upstream", "load_settings", "main"]

log = logging.getLogger("reviewqueue_client.mcp")

CONFIG_ENV = "REVIEWQUEUE_MCP_CONFIG"
HOLD_ENV = "REVIEWQUEUE_MCP_HOLD_SECONDS"
TRANSPORT_ENV = "REVIEWQUEUE_MCP_TRANSPORT"
LINK_KEY = "reviewqueue/action"  # the gateway's input request (SEP-2322): a link to the action's page
CONVERSATION_META = "reviewqueue/conversation_id"  # a client may name its conversation in a call's _meta
DEFAULT_HOLD = 50.0  # under the 60 s most MCP clients wait for a result
DEFAULT_PROGRESS = 5.0
MAX_HOLD = 3600.0
_SUMMARY_LIMIT = 2000
_WALK_LIMIT = 64  # generations tried for one call before giving up (each is a submission)
_MEMORY = 10_000  # calls whose generation is remembered
_SCOPE_TTL = 60.0  # seconds a scope answer is reused for tools/list
_TOOL_TTL = 60.0  # seconds a tool's description and schema are reused for its calls
# Refusals that are reviewqueue's answer about this call (the model can adapt), not an outage.
_REFUSALS = (errors.KillSwitchEngaged, errors.OutOfScope, errors.RateLimited, errors.InvalidRequest)
_SETTINGS = {"url", "api_key", "hold_seconds", "progress_seconds", "dashboard_url", "transport", "host", "port", "path"}
_SERVER_SETTINGS = {"context", "hold_seconds"}


# -- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """One proxied MCP server and how its calls become actions."""

    name: str  # as in mcpServers
    slug: str  # in action types and (with several servers) tool-name prefixes
    server: StdioMCPServer | RemoteMCPServer | FastMCP  # a FastMCP server: proxied in process
    context: dict[str, Any] | None = None
    hold_seconds: float = DEFAULT_HOLD

    def action_type(self, tool: str) -> str:
        return _action_type(self.slug, tool)


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str
    upstreams: tuple[Upstream, ...]
    hold_seconds: float = DEFAULT_HOLD
    progress_seconds: float = DEFAULT_PROGRESS
    dashboard_url: str = ""  # where action pages live (default: url)
    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/mcp"

    def action_url(self, action_id: str) -> str:
        return f"{(self.dashboard_url or self.url).rstrip('/')}/actions/{action_id}/"


class GatewayConfigurationError(errors.ConfigurationError):
    """A setting of the gateway is missing or wrong; the message starts with the field's name."""

    next_step = "Fix that setting (the config file, the environment or the command line) and start the gateway again."


def load_settings(
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **command_line: Any,
) -> Settings:
    """Settings from a config file (a path, or its parsed JSON), the environment and the command line (each
    wins over the one before). Raises GatewayConfigurationError naming the field that is wrong."""
    env = os.environ if env is None else env
    bad = GatewayConfigurationError
    if config is None and env.get(CONFIG_ENV):
        config = env[CONFIG_ENV]
    if config is None:
        raise bad(f"--config (or {CONFIG_ENV}): required, the file naming the upstream MCP servers.")
    home = None
    if isinstance(config, (str, Path)):
        home = Path(config).resolve().parent
        try:
            document = json.loads(Path(config).read_text(encoding="utf-8"))
        except OSError as problem:
            raise bad(f"--config: can't read {config} ({problem.strerror}).") from None
        except ValueError as problem:
            raise bad(f"--config: {config} is not valid JSON ({problem}).") from None
    else:
        document = copy.deepcopy(dict(config))
    if not isinstance(document, dict):
        raise bad("--config: the file must hold a JSON object with mcpServers.")
    own = document.pop("reviewqueue", {})
    if not isinstance(own, dict):
        raise bad("reviewqueue: must be an object of gateway settings.")
    _no_unknown(own, _SETTINGS, "reviewqueue")

    def pick(key: str, variable: str = "", default: Any = None) -> tuple[Any, str]:
        """A setting's value and the name of where it came from (what an error names)."""
        if command_line.get(key) is not None:
            return command_line[key], f"--{key}"
        if variable and env.get(variable):
            return env[variable], variable
        if key in own:
            return own[key], f"reviewqueue.{key}"
        return default, f"{variable} (or reviewqueue.{key})" if variable else f"reviewqueue.{key}"

    url, field = pick("url", "REVIEWQUEUE_URL", "")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise bad(f"{field}: required, reviewqueue's address, starting with http:// or https:// (got {url!r}).")
    api_key, field = pick("api_key", "REVIEWQUEUE_API_KEY", "")
    if not isinstance(api_key, str) or not api_key.strip():
        raise bad(f"{field}: required, the gateway's agent key.")
    hold = _seconds(*pick("hold_seconds", HOLD_ENV, DEFAULT_HOLD))
    progress = _seconds(*pick("progress_seconds", "", DEFAULT_PROGRESS))
    if progress <= 0:
        raise bad("reviewqueue.progress_seconds: must be more than 0.")
    transport, field = pick("transport", TRANSPORT_ENV, "stdio")
    if transport not in ("stdio", "http"):
        raise bad(f"{field}: 'stdio' or 'http' (got {transport!r}).")
    port, field = pick("port", "", 8765)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise bad(f"{field}: a port number (got {port!r}).")
    text: dict[str, Any] = {}
    for key, default in (("host", "127.0.0.1"), ("path", "/mcp"), ("dashboard_url", "")):
        text[key], field = pick(key, "", default)
        if not isinstance(text[key], str):
            raise bad(f"{field}: must be text.")
    return Settings(
        url=url.rstrip("/"),
        api_key=api_key.strip(),
        upstreams=_upstreams(document.get("mcpServers"), hold, home),
        hold_seconds=hold,
        progress_seconds=progress,
        dashboard_url=text["dashboard_url"],
        transport=transport,
        host=text["host"],
        port=port,
        path=text["path"],
    )


def _upstreams(servers: Any, hold: float, home: Path | None) -> tuple[Upstream, ...]:
    """The upstream servers; a stdio server without a ``cwd`` starts in the config file's folder (``home``),
    so relative paths in the file mean what they say wherever the gateway is started from."""
    if not isinstance(servers, dict) or not servers:
        raise GatewayConfigurationError("mcpServers: required, an object naming at least one upstream MCP server.")
    upstreams: list[Upstream] = []
    for name, entry in servers.items():
        field = f"mcpServers.{name}"
        if not isinstance(entry, dict):
            raise GatewayConfigurationError(f"{field}: must be an object with 'command' or 'url'.")
        entry = dict(entry)
        own = entry.pop("reviewqueue", {})
        if not isinstance(own, dict):
            raise GatewayConfigurationError(f"{field}.reviewqueue: must be an object.")
        _no_unknown(own, _SERVER_SETTINGS, f"{field}.reviewqueue")
        context = own.get("context")
        if context is not None and not isinstance(context, dict):
            raise GatewayConfigurationError(f"{field}.reviewqueue.context: must be an object.")
        kind: type[StdioMCPServer] | type[RemoteMCPServer]
        if "command" in entry:
            kind = StdioMCPServer
        elif "url" in entry:
            kind = RemoteMCPServer
        else:
            raise GatewayConfigurationError(f"{field}: needs 'command' (a stdio server) or 'url' (an HTTP server).")
        try:
            server = kind.model_validate(entry)
        except ValidationError as bad:
            first = bad.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise GatewayConfigurationError(f"{field}.{where}: {first['msg']}.") from None
        if isinstance(server, StdioMCPServer) and server.cwd is None and home is not None:
            server.cwd = str(home.resolve())
        if isinstance(server, RemoteMCPServer) and not server.url.startswith(("http://", "https://")):
            raise GatewayConfigurationError(f"{field}.url: must start with http:// or https://.")
        slug = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_")
        if not slug:
            raise GatewayConfigurationError(f"{field}: a server's name needs a letter or a digit.")
        if any(other.slug == slug for other in upstreams):
            raise GatewayConfigurationError(f"{field}: its name reads the same as another server's ({slug}).")
        server_hold = _seconds(own.get("hold_seconds", hold), f"{field}.reviewqueue.hold_seconds")
        upstreams.append(Upstream(str(name), slug, server, context, server_hold))
    return tuple(upstreams)


def _no_unknown(section: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in section:
        if key not in known:
            raise GatewayConfigurationError(f"{where}.{key}: unknown setting (known: {', '.join(sorted(known))}).")


def _seconds(value: Any, field: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise GatewayConfigurationError(f"{field}: a number of seconds (got {value!r}).") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_HOLD:
        raise GatewayConfigurationError(f"{field}: 0 to {MAX_HOLD:g} seconds (got {value!r}).")
    return seconds


def _action_type(server_slug: str, tool: str) -> str:
    """``mcp.<server>.<tool>``, in the characters an action type allows (128 at most, kept unique by a hash)."""
    name = f"mcp.{server_slug}.{re.sub(r'[^A-Za-z0-9_.:-]+', '_', tool).strip('_.') or 'tool'}"
    if len(name) > 128:
        name = f"{name[:119]}-{sha256_hex(tool)[:8]}"
    return name


# -- the gateway --------------------------------------------------------------------------------------


Forward = Callable[[dict[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True)
class _Ran:
    """A run's result (or failure), shared with identical calls that arrived while it ran."""

    result: ToolResult | None
    failure: BaseException | None


class Gateway:
    """The gateway: a FastMCP server (``server()``) proxying the configured upstreams, each behind a
    ReviewMiddleware that asks reviewqueue first. ``client``: an AsyncClient (default: from settings)."""

    def __init__(self, settings: Settings, client: AsyncClient | None = None):
        self.settings = settings
        self.client = client or AsyncClient(settings.url, settings.api_key)
        self.instance = uuid.uuid4().hex[:12]  # the conversation of clients that have no session (stdio)
        self._generations: OrderedDict[str, int] = OrderedDict()
        self._running: dict[str, asyncio.Future[_Ran]] = {}
        self._reports: set[asyncio.Task[None]] = set()
        self._scopes: dict[str, tuple[bool, float]] = {}

    def server(self) -> FastMCP:
        """The gateway as a FastMCP server: the upstream's proxy itself when there is one (a layer less per
        call), else one proxy per upstream mounted under its name (tools ``<server>_<tool>``)."""
        pools: list[_Sessions] = []

        @asynccontextmanager
        async def lifespan(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
            try:
                yield {}
            finally:
                await self.drain()
                for sessions in pools:
                    await sessions.close()

        proxies = []
        for upstream in self.settings.upstreams:
            server = upstream.server
            pools.append(_Sessions(_transport_factory(server)))
            single = len(self.settings.upstreams) == 1
            proxy = FastMCPProxy(
                client_factory=pools[-1].checkout, name=upstream.slug, lifespan=lifespan if single else None
            )
            proxy.add_middleware(ReviewMiddleware(self, upstream))
            proxies.append(proxy)
        if len(proxies) == 1:
            return proxies[0]
        gateway: FastMCP = FastMCP("reviewqueue-mcp", lifespan=lifespan)
        for upstream, proxy in zip(self.settings.upstreams, proxies, strict=True):
            gateway.mount(proxy, namespace=upstream.slug)
        return gateway

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for the outcome reports still under way (at shutdown)."""
        if self._reports:
            await asyncio.wait(set(self._reports), timeout=timeout)

    async def check(self) -> None:
        """At start: a key reviewqueue refuses is bad configuration (raises ConfigurationError); an
        unreachable reviewqueue is not (calls fail closed until it is back)."""
        try:
            await self.client.allowed([])
        except errors.Unauthenticated as refused:
            raise GatewayConfigurationError(
                f"REVIEWQUEUE_API_KEY (or reviewqueue.api_key): reviewqueue at {self.settings.url} refused it "
                f"({refused.message})."
            ) from None
        except errors.ServiceUnavailable as down:
            log.warning("reviewqueue is not reachable yet; every tool call fails closed until it is: %s", down.message)

    # -- tools/list --------------------------------------------------------------------------------

    async def allowed(self, action_types: Sequence[str]) -> dict[str, bool]:
        """Which action types the key's scopes allow (answers reused for a minute)."""
        now = time.monotonic()
        stale = [t for t in dict.fromkeys(action_types) if t not in self._scopes or self._scopes[t][1] < now]
        if stale:
            check = await self.client.allowed([(action_type, "") for action_type in stale])
            for action_type, yes in zip(stale, check.allowed, strict=True):
                self._scopes[action_type] = (yes, now + _SCOPE_TTL)
        return {t: self._scopes[t][0] for t in action_types}

    # -- tools/call --------------------------------------------------------------------------------

    async def call(
        self, upstream: Upstream, tool: Tool, payload: dict[str, Any], ctx: Context | None, forward: Forward
    ) -> ToolResult:
        """One tool call: find or make its action, hold it while pending, run it once approved."""
        conversation = _conversation(ctx, self.instance)
        base = f"mcp:{sha256_hex([conversation, upstream.name, tool.name, payload])[:40]}"
        deadline = time.monotonic() + upstream.hold_seconds
        submission: dict[str, Any] = {
            "action_type": upstream.action_type(tool.name),
            "payload": payload,
            "summary": _summary(upstream, tool, payload),
            "conversation_id": conversation,
            "context": upstream.context,
        }
        for _ in range(_WALK_LIMIT):
            generation = self._generations.get(base, 1)
            try:
                action = await self.client.submit(**submission, idempotency_key=f"{base}:{generation}")
            except errors.IdempotencyConflict:  # the same call with another body (the tool's description changed)
                self._used(base, generation)
                continue
            except _REFUSALS as refused:
                raise ToolError(refused.message_for_model, log_level=logging.INFO) from None
            except errors.ReviewqueueError as problem:
                raise ToolError(_failed_closed(problem), log_level=logging.WARNING) from None
            if action.status == "pending":
                link = _link_answer(ctx)
                if link == "ask":  # a client that can show a link gets the action's page instead of a held call
                    return self._ask_by_link(action, tool)
                if link in ("decline", "cancel"):
                    return self._still_pending(action, tool)
                action = await self._hold(action, upstream, ctx, deadline)
                if action.status == "pending":
                    return self._still_pending(action, tool)
            if action.status != "approved":
                self._used(base, generation)
                raise ToolError(_refusal(action), log_level=logging.INFO)
            running = self._running.get(action.id)
            if running is not None:  # an identical call is running it now: share its result
                return _unwrap(await asyncio.shield(running))
            if action.outcome is not None:  # it ran: this is a new call
                self._used(base, generation)
                continue
            return await self._run(action, base, generation, forward)
        raise ToolError(
            f"This exact call was made {_WALK_LIMIT} times in this conversation already; change something "
            "or ask the user.",
            log_level=logging.WARNING,
        )

    def _used(self, base: str, generation: int) -> None:
        self._generations[base] = generation + 1
        self._generations.move_to_end(base)
        while len(self._generations) > _MEMORY:
            self._generations.popitem(last=False)

    async def _hold(self, action: Action, upstream: Upstream, ctx: Context | None, deadline: float) -> Action:
        """Wait for the decision until the deadline, telling the client every few seconds (progress)."""
        started = time.monotonic()
        url = self.settings.action_url(action.id)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return action
            await _progress(ctx, time.monotonic() - started, upstream.hold_seconds, f"Waiting for a reviewer: {url}")
            try:
                action = await self.client.wait(action.id, timeout=min(left, self.settings.progress_seconds))
            except errors.StillPending as still:
                action = still.action
            except errors.RateLimited as busy:  # too many waits parked: look again after a pause
                await asyncio.sleep(max(0.0, min(left, busy.retry_after or 1.0, self.settings.progress_seconds)))
                action = await self._get(action.id)
            except errors.ReviewqueueError as problem:
                raise ToolError(_failed_closed(problem, action), log_level=logging.WARNING) from None
            if action.is_final:
                return action

    async def _get(self, action_id: str) -> Action:
        try:
            return await self.client.get(action_id)
        except errors.ReviewqueueError as problem:
            raise ToolError(_failed_closed(problem), log_level=logging.WARNING) from None

    def _ask_by_link(self, action: Action, tool: Tool) -> ToolResult:
        """SEP-2322: ask the client to show the action's page; its retry (with the answer) is then held."""
        ask = mcp_types.ElicitRequestURLParams(
            message=(
                f"{tool.name} needs a reviewer's approval in reviewqueue (action {action.id}). Open the page to "
                "follow it (a reviewer decides there); the call goes on when you come back."
            ),
            url=self.settings.action_url(action.id),
        )
        asked = mcp_types.InputRequiredResult(input_requests={LINK_KEY: mcp_types.ElicitRequest(params=ask)})
        return InputRequiredToolResult(asked)

    def _still_pending(self, action: Action, tool: Tool) -> ToolResult:
        url = self.settings.action_url(action.id)
        text = (
            f"Still waiting for a reviewer to decide on this call to {tool.name} (action {action.id}, {url}). "
            f"Nothing has run yet. Call {tool.name} again with exactly the same arguments to keep waiting: "
            "the retry finds the same action and runs it once approved."
        )
        meta = {"reviewqueue": {"action_id": action.id, "status": action.status, "tier": action.tier, "url": url}}
        return ToolResult(content=text, meta=meta, is_error=True)

    async def _run(self, action: Action, base: str, generation: int, forward: Forward) -> ToolResult:
        try:
            approved = action.executable_payload()
        except errors.ReviewqueueError as refused:  # PayloadMismatch: what would run is not what was approved
            raise ToolError(refused.message_for_model, log_level=logging.ERROR) from None
        shared: asyncio.Future[_Ran] = asyncio.get_running_loop().create_future()
        self._running[action.id] = shared
        started = time.perf_counter()
        result: ToolResult | None = None
        failure: BaseException | None = None
        try:
            result = await forward(approved)
            return result
        except BaseException as problem:  # the upstream failed, or the client cancelled mid-run
            failure = problem
            raise
        finally:
            del self._running[action.id]
            shared.set_result(_Ran(result, failure))
            if not isinstance(result, InputRequiredToolResult):  # an upstream's question: it has not run yet
                self._used(base, generation)
                self._report(action.id, started, _Ran(result, failure))

    def _report(self, action_id: str, started: float, ran: _Ran) -> None:
        """Report the outcome in the background: the client has its result without waiting for it."""
        report: dict[str, Any] = {"duration_ms": round((time.perf_counter() - started) * 1000), "attempt": 1}
        if ran.failure is not None:
            kind = (
                "cancelled" if isinstance(ran.failure, asyncio.CancelledError) else _snake(type(ran.failure).__name__)
            )
            report.update(status="failed", detail=f"{type(ran.failure).__name__}: {ran.failure}", error_kind=kind)
        elif ran.result is not None and ran.result.is_error:
            report.update(status="failed", detail=_text(ran.result), error_kind="tool_error")
        else:
            report.update(status="succeeded", detail=_text(ran.result) if ran.result else "")
        task = asyncio.get_running_loop().create_task(self._deliver(action_id, report))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _deliver(self, action_id: str, report: dict[str, Any]) -> None:
        try:
            await self.client.report_outcome(action_id, **report)
        except errors.ReviewqueueError as problem:
            log.warning("could not report the outcome of action %s: %s", action_id, problem.message)


class _Sessions:
    """Connected sessions to one upstream, one per call in flight. FastMCP's proxy would otherwise connect
    afresh for every request (about 20 ms over HTTP), and one shared session would mix concurrent calls'
    progress and questions (FastMCP keeps one request context per client). Each session speaks the era of
    the front connection it serves, as FastMCP's own proxy does."""

    KEEP = 16  # idle sessions kept per era

    def __init__(self, new_transport: Callable[[], ClientTransport]):
        self.new_transport = new_transport  # each session its own, so closing one closes nothing shared
        self._idle: dict[str, list[_Session]] = {}
        self._open: set[_Session] = set()

    async def checkout(self) -> _Session:
        mode = _front_era()
        idle = self._idle.setdefault(mode, [])
        while idle:
            session = idle.pop()
            if session.is_connected():
                return session
            self._open.discard(session)
        session = _Session(self.new_transport(), mode=mode)
        session.sessions = self
        self._open.add(session)
        await session.__aenter__()  # connects; FastMCP's `async with` around each use then only counts
        return session

    def release(self, session: _Session) -> None:
        idle = self._idle.setdefault(session.mode, [])
        if session.is_connected() and len(idle) < self.KEEP:
            idle.append(session)
        else:
            self._open.discard(session)
            asyncio.get_running_loop().create_task(session.close())

    async def close(self) -> None:
        open_, self._open, self._idle = list(self._open), set(), {}
        for session in open_:
            await session.close()


def _transport_factory(server: Any) -> Callable[[], ClientTransport]:
    """New transports to an upstream: an in-process FastMCP server, or an mcpServers entry."""
    if isinstance(server, FastMCP):
        return lambda: FastMCPTransport(server)
    return server.to_transport


class _Session(StatefulProxyClient):
    """An upstream session that goes back to its pool when FastMCP's proxy is done with it."""

    sessions: _Sessions

    async def __aexit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        await super().__aexit__(exc_type, exc_value, traceback)
        self.sessions.release(self)


def _front_era() -> str:
    """The protocol era of the request being served: its version (2026-07-28 on), else "legacy"."""
    try:
        context = get_context().request_context
    except RuntimeError:
        return "auto"
    if context is None:
        return "auto"
    return context.protocol_version if context.protocol_version in MODERN_PROTOCOL_VERSIONS else "legacy"


class ReviewMiddleware(Middleware):
    """On one upstream's proxy: tools/list shows what the key may call; tools/call asks reviewqueue first."""

    def __init__(self, gateway: Gateway, upstream: Upstream):
        self.gateway = gateway
        self.upstream = upstream
        self._tools: dict[str, tuple[Tool, float]] = {}

    async def _tool(self, ctx: Context | None, name: str) -> Tool | None:
        """The upstream's tool (its description and schema), looked up at most once a minute."""
        known = self._tools.get(name)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        tool = await ctx.fastmcp.get_tool(name) if ctx is not None else None
        if tool is not None:
            if len(self._tools) > 1000:
                self._tools.clear()
            self._tools[name] = (tool, time.monotonic() + _TOOL_TTL)
        return tool

    async def on_list_tools(
        self, context: MiddlewareContext[mcp_types.ListToolsRequest], call_next: CallNext[Any, Sequence[Tool]]
    ) -> Sequence[Tool]:
        tools = await call_next(context)
        try:
            allowed = await self.gateway.allowed([self.upstream.action_type(tool.name) for tool in tools])
        except errors.ReviewqueueError as problem:
            # Listing is no boundary (every call is checked when submitted, and fails closed while reviewqueue
            # is away); an empty list would hide the problem, and clients keep the list they got.
            log.warning("tools/list: scopes not checked, every tool listed: %s", problem.message)
            return tools
        return [tool for tool in tools if allowed[self.upstream.action_type(tool.name)]]

    async def on_call_tool(
        self, context: MiddlewareContext[mcp_types.CallToolRequestParams], call_next: CallNext[Any, ToolResult]
    ) -> ToolResult:
        ctx = context.fastmcp_context
        tool = await self._tool(ctx, context.message.name)
        if tool is None:  # unknown here: FastMCP answers that
            return await call_next(context)
        payload = _checked(tool, dict(context.message.arguments or {}))

        async def forward(arguments: dict[str, Any]) -> ToolResult:
            message = context.message.model_copy(update={"arguments": arguments})
            return await call_next(context.copy(message=message))

        return await self.gateway.call(self.upstream, tool, payload, ctx, forward)


# -- helpers ---------------------------------------------------------------------------------------------


def _checked(tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments, checked against the tool's input schema before anyone reviews them, with the
    top-level defaults filled in (what the upstream will use, shown to the reviewer)."""
    schema = tool.parameters or {"type": "object"}
    validator = _validator(json.dumps(schema, sort_keys=True))
    if validator is None:  # the upstream's schema is broken: the upstream judges its arguments
        log.warning("tool %s has an invalid input schema; its arguments are not checked", tool.name)
    else:
        wrong = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
        if wrong:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.absolute_path) or 'arguments'}: {e.message}" for e in wrong[:5]
            )
            raise ToolError(
                f"Invalid arguments for {tool.name}: {problems}. Nothing was submitted for review and nothing ran; "
                "fix the arguments and call again.",
                log_level=logging.INFO,
            )
    for name, spec in (schema.get("properties") or {}).items():
        if name not in arguments and isinstance(spec, dict) and "default" in spec:
            arguments[name] = copy.deepcopy(spec["default"])
    return arguments


@functools.lru_cache(maxsize=512)
def _validator(schema: str) -> Any:
    """A schema's validator, built once (checking the schema itself costs more than a call's validation)."""
    parsed = json.loads(schema)
    kind = jsonschema.validators.validator_for(parsed, default=jsonschema.Draft202012Validator)
    try:
        kind.check_schema(parsed)
    except jsonschema.SchemaError:
        return None
    return kind(parsed)


def _summary(upstream: Upstream, tool: Tool, payload: Mapping[str, Any]) -> str:
    about = (tool.description or "").strip().splitlines()[0][:300] if (tool.description or "").strip() else ""
    shown = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in payload.items())
    text = f"{tool.name} on MCP server {upstream.name}" + (f": {about}" if about else "") + f" ({shown})"
    return text if len(text) <= _SUMMARY_LIMIT else text[: _SUMMARY_LIMIT - 1] + "…"


def _conversation(ctx: Context | None, instance: str) -> str:
    """The conversation: what the client names in ``_meta["reviewqueue/conversation_id"]``; else the MCP
    session (handshake era); else, without sessions (2026-07-28), the gateway process for stdio (it serves
    one client) and the client's name over HTTP."""
    context = ctx.request_context if ctx is not None else None
    if context is None:
        return f"mcp-gateway:{instance}"
    named = (context.meta or {}).get(CONVERSATION_META)
    if isinstance(named, str) and named.strip():
        return named.strip()[:200]
    if context.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return f"mcp-session:{ctx.session_id}"[:200] if ctx is not None else f"mcp-gateway:{instance}"
    if ctx is not None and ctx.transport in ("streamable-http", "sse"):
        params = getattr(context.session, "client_params", None)
        client = params.client_info.name if params is not None and params.client_info is not None else "unknown"
        return f"mcp-client:{client}"[:200]
    return f"mcp-gateway:{instance}"


def _link_answer(ctx: Context | None) -> str | None:
    """None: this client can't be sent a link (handshake era, or no URL elicitation), so the call is held;
    "ask": send it one; else its answer to the link ("accept", "decline", "cancel")."""
    context = ctx.request_context if ctx is not None else None
    if ctx is None or context is None or context.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return None
    capabilities = context.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None or capabilities.elicitation.url is None:
        return None
    answer = (ctx.input_responses or {}).get(LINK_KEY)
    return "ask" if answer is None else str(getattr(answer, "action", "accept"))


async def _progress(ctx: Context | None, done: float, total: float, message: str) -> None:
    if ctx is None:
        return
    try:
        await ctx.report_progress(round(done, 1), total, message)
    except Exception as problem:  # a client gone or without progress: holding goes on regardless
        log.debug("progress notification not sent: %s", problem)


def _refusal(action: Action) -> str:
    """A refused action's reason, as the tool error the model reads."""
    note = (action.decision.note if action.decision else "").strip().rstrip(".")
    if action.status == "halted":
        return (
            f"Not done: a kill switch halted this call. Reason: {note or 'none given'}. {errors.ActionHalted.next_step}"
        )
    if action.status == "expired" and note:
        return f"Not done: nobody approved this call in time. Reason: {note}. {errors.ActionExpired.next_step}"
    return errors.not_approved(action).message_for_model


def _failed_closed(problem: errors.ReviewqueueError, action: Action | None = None) -> str:
    """Fail closed: what the model reads when reviewqueue could not be asked."""
    if isinstance(problem, errors.ServiceUnavailable):
        again = (
            f"Action {action.id} stays as it is: calling again with the same arguments finds it."
            if action
            else "Call again later with the same arguments."
        )
        return f"Not done, nothing ran: {problem.message.rstrip('.')}. Nothing runs without reviewqueue's approval. {again}"
    return f"Not done, nothing ran: reviewqueue did not approve this call: {problem.message.rstrip('.')}. {problem.next_step}"


def _unwrap(ran: _Ran) -> ToolResult:
    if ran.result is None:
        raise ToolError(f"The call failed: {ran.failure}", log_level=logging.INFO)
    return ran.result


def _text(result: ToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, mcp_types.TextContent))[:10_000]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()[:64]


# -- the command ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``reviewqueue-mcp``: start the gateway (stdio by default; ``--transport http`` for streamable HTTP)."""
    parser = argparse.ArgumentParser(prog="reviewqueue-mcp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help=f"the mcpServers JSON file (default: ${CONFIG_ENV})")
    parser.add_argument("--transport", choices=("stdio", "http"), help="how clients reach the gateway")
    parser.add_argument("--host", help="HTTP: the address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP: the port (default 8765)")
    parser.add_argument("--path", help="HTTP: the endpoint's path (default /mcp)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, transport=args.transport, host=args.host, port=args.port, path=args.path)
    except errors.ConfigurationError as bad:
        print(f"reviewqueue-mcp: bad configuration: {bad.message}", file=sys.stderr)
        return 2
    # stderr only (stdout is the MCP stream on stdio); warnings by default: a line per request would drown a
    # desktop client's log. REVIEWQUEUE_MCP_LOG_LEVEL=INFO shows more.
    level = os.environ.get("REVIEWQUEUE_MCP_LOG_LEVEL", "WARNING").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        print(
            f"reviewqueue-mcp: bad configuration: REVIEWQUEUE_MCP_LOG_LEVEL: a log level (got {level!r}).",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve(settings, level))
    except errors.ConfigurationError as bad:
        print(f"reviewqueue-mcp: bad configuration: {bad.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(settings: Settings, log_level: str) -> None:
    gateway = Gateway(settings)
    try:
        await gateway.check()
        server = gateway.server()
        if settings.transport == "stdio":
            await server.run_async("stdio", show_banner=False, log_level=log_level)
        else:
            await server.run_async(
                "http",
                show_banner=False,
                log_level=log_level,
                host=settings.host,
                port=settings.port,
                path=settings.path,
            )
    finally:
        await gateway.drain()
        await gateway.client.aclose()


if __name__ == "__main__":
    sys.exit(main())
