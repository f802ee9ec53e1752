"""Where the service may send requests of its own (agent webhooks, notification
channels): outward only, never into its own network (SSRF).

A URL an agent or an admin gives must not reach loopback, link-local (cloud
metadata at 169.254.169.254), private, shared, unique-local, multicast,
reserved or unspecified addresses, in any spelling (127.1, 0x7f000001,
2130706433, [::ffff:127.0.0.1], localhost.). Two checks:

- `check_url` when the URL is given and again before each delivery: http(s),
  no credentials, a plain host, no internal literal address. No DNS: it runs
  on the submit path, and what a name resolves to then says nothing about
  what it resolves to at delivery.
- `post` delivers through a transport that resolves the name itself, refuses
  it if any address is internal, and connects to a checked address (then
  checks the peer it got), keeping the name for the Host header and for TLS
  (SNI and the certificate). A name that resolves inward, by DNS rebinding or
  otherwise, is refused.

REVIEWQUEUE["WEBHOOK_ALLOWED_NETWORKS"] (REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS)
admits internal receivers anyway: CIDRs or addresses (`10.1.2.0/24`,
`127.0.0.1`) and host names (`hooks.internal.example`, `*.corp.example`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import cache

import httpcore
import httpx
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
# WHATWG URL: a host whose last label is a number is an IPv4 address
# (getaddrinfo reads 127.1, 0x7f.1, 017700000001 and 2130706433 as one).
_NUMBER = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class UnsafeURL(ValueError):
    """A URL the service must not send to; `reason` is a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, eq=False)  # hashed by identity: the submit path's verdict cache keys on it
class AllowList:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # from "*.corp.example": ".corp.example"

    def allows_address(self, ip: IPAddress) -> bool:
        candidates = [ip, *_embedded_ipv4(ip)]
        return any(c in network for c in candidates for network in self.networks if c.version == network.version)

    def allows_name(self, host: str) -> bool:
        host = host.rstrip(".").lower()
        return host in self.names or host.endswith(self.suffixes)


def parse_allow_list(entries) -> AllowList:
    """CIDRs, addresses and host names (`*.` for a domain's subdomains); ValueError names a bad entry."""
    networks, names, suffixes = [], set(), []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        wildcard = entry.startswith("*.")
        name = entry[2:] if wildcard else entry
        if not _NAME.match(name) or _NUMBER.match(name.rsplit(".", 1)[-1]):
            raise ValueError(f"{raw!r} is neither a CIDR, an IP address nor a host name")
        if wildcard:
            suffixes.append("." + name)
        else:
            names.add(name)
    return AllowList(tuple(networks), frozenset(names), tuple(suffixes))


_parsed: tuple[object, AllowList] = (None, AllowList())


def allow_list() -> AllowList:
    """The deployment's allow-list, parsed once per setting (it runs on every submission)."""
    global _parsed
    entries = settings.REVIEWQUEUE.get("WEBHOOK_ALLOWED_NETWORKS", ())
    seen, parsed = _parsed
    if seen is not entries:
        parsed = parse_allow_list(entries)
        _parsed = (entries, parsed)
    return parsed


# -------------------------------------------------------------- addresses ---


def _embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, compatible)."""
    if ip.version == 4:
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_kind(ip: IPAddress) -> str | None:
    """What makes an address internal ("loopback", "private", ...), or None for a public one."""
    for inner in _embedded_ipv4(ip):
        if kind := address_kind(inner):
            return kind
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unique-local", ip.version == 6 and ip in ipaddress.IPv6Network("fc00::/7")),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", ip.version == 6 and ip.is_site_local),
        ("non-global", not ip.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def check_address(ip: IPAddress, allow: AllowList, *, host: str = "") -> None:
    """Raise UnsafeURL for an internal address that the allow-list does not admit."""
    kind = address_kind(ip)
    if kind and not allow.allows_address(ip):
        what = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
        said = f"{host} resolves to {ip}, {what}" if host and host != str(ip) else f"{ip} is {what}"
        raise UnsafeURL(
            "internal_address",
            f"{said}; the service calls only public addresses unless REVIEWQUEUE_WEBHOOK_ALLOWED_NETWORKS admits it",
        )


def _ipv4_number(host: str) -> ipaddress.IPv4Address:
    """127.1, 0x7f000001, 017700000001 as inet_aton reads them; ValueError if not one."""
    parts = host.split(".")
    if len(parts) > 4 or not all(_NUMBER.match(part) for part in parts):
        raise ValueError(host)
    numbers = [_ipv4_part(part) for part in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(host)
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(head)) + last)


def _ipv4_part(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if len(part) > 1 and part[0] == "0" else int(part)


# --------------------------------------------------------------- the URL ---


def check_url(url: str, allow: AllowList | None = None) -> None:
    """Raise UnsafeURL unless `url` is http(s), without credentials, to a host
    that is not an internal address by its spelling alone (no DNS)."""
    allow = allow_list() if allow is None else allow
    try:
        parsed = httpx.URL(url)
        port = parsed.port
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UnsafeURL("invalid_url", f"not a URL the service can call: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL("invalid_url", "must be an http or https URL")
    if parsed.userinfo or "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise UnsafeURL(
            "credentials", "must not carry credentials (user:password@); receivers verify the signature instead"
        )
    if port is not None and not 0 < port < 65536:
        raise UnsafeURL("invalid_url", f"port {port} is out of range")
    if not host:
        raise UnsafeURL("invalid_url", "has no host")
    if ":" in host:  # an IPv6 literal (httpx took the brackets off)
        if "%" in host:
            raise UnsafeURL("invalid_host", f"{host!r}: zone ids are refused")
        try:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeURL("invalid_host", f"{host!r} is not an IPv6 address") from None
        check_address(ip, allow)
        return
    name = host.lower().rstrip(".")
    if allow.allows_name(name):
        return
    if not _NAME.match(name):
        raise UnsafeURL("invalid_host", f"{host!r} is not a host name or an IP address")
    if _NUMBER.match(name.rsplit(".", 1)[-1]):
        try:
            ip = _ipv4_number(name)
        except ValueError:
            raise UnsafeURL("invalid_host", f"{host!r} is not an IPv4 address") from None
        check_address(ip, allow)
        return
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        check_address(ipaddress.IPv4Address("127.0.0.1"), allow, host=host)
        check_address(ipaddress.IPv6Address("::1"), allow, host=host)
        return
    if "." not in name:
        raise UnsafeURL(
            "internal_address",
            f"{host!r} is a single-label name, which only resolves inside a network; allow-list it to use it",
        )


# -------------------------------------------------------------- delivery ---


def resolve_checked(host: str, port: int, allow: AllowList) -> list[IPAddress]:
    """Every address `host` resolves to, if none is internal (or the name is allow-listed)."""
    name_allowed = allow.allows_name(host)
    addresses: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not name_allowed:
            check_address(ip, allow, host=host)
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's own socket backend, but it connects only to addresses it resolved and checked."""

    def __init__(self, allow: AllowList):
        self.allow = allow
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception | None = None
        for ip in resolve_checked(host, port, self.allow):
            try:
                stream = self.inner.connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next address, as create_connection would
                error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer is None or ipaddress.ip_address(str(peer[0]).split("%", 1)[0]) != ip:
                stream.close()
                raise UnsafeURL("internal_address", f"connected to {peer}, not the checked address {ip}")
            return stream
        raise error or httpcore.ConnectError(f"could not connect to {host}")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise UnsafeURL("invalid_url", "unix sockets are not delivery targets")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@cache
def _ssl_context():
    return httpx.create_ssl_context()  # loading the CA bundle takes milliseconds: once per process


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over `_GuardedBackend`; no proxies from the environment."""

    def __init__(self, allow: AllowList, *, ssl_context=None):  # not super().__init__(): its pool would be unused
        # httpx takes no network backend; its transport is a thin shell over httpcore's pool, which does.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or _ssl_context(),
            max_connections=4,
            network_backend=_GuardedBackend(allow),
        )


def post(url: str, *, content: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
    """POST to a URL that passes `check_url`, through `GuardedTransport`; never follows redirects."""
    allow = allow_list()
    check_url(url, allow)
    with httpx.Client(
        transport=GuardedTransport(allow), trust_env=False, follow_redirects=False, timeout=timeout
    ) as client:
        return client.post(url, content=content, headers=headers)
