"""SSRF guard: a connector reaches public http(s) addresses only, unless its manifest says otherwise.

Two layers, both driven by :data:`private_ok_hosts` (the hosts, lower-case as in the URL, for which the current
call may reach private addresses; the runtime sets it from ``allow_private_network`` and the manifest's own hosts):

* :func:`check_url` before every request (first hop, each redirect, each page): scheme, no userinfo, and every
  address the host resolves to (``getaddrinfo`` in a thread) must be public;
* :func:`guarded_transport` checks again at connect time and connects to the address it checked, so a DNS answer
  that changes between the check and the connection (rebinding) cannot reach an internal address. TLS still
  verifies the certificate against the hostname.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from contextvars import ContextVar

import httpcore
import httpx

from oshal.errors import Forbidden, Unavailable

ALLOWED_SCHEMES = frozenset({"http", "https"})
private_ok_hosts: ContextVar[frozenset[str]] = ContextVar("oshal_connector_private_ok_hosts", default=frozenset())

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_FIX = ("if this connector really serves from a private network, an operator must set allow_private_network on "
        "its manifest")


def blocked_reason(ip: IPAddress) -> str | None:
    """Why a connector may not reach ``ip`` (None when it is a public unicast address)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return blocked_reason(embedded)
    checks = (("loopback", ip.is_loopback), ("link-local (cloud metadata)", ip.is_link_local),
              ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast), ("private", ip.is_private),
              ("reserved", ip.is_reserved), ("non-public", not ip.is_global))
    return next((reason for reason, hit in checks if hit), None)


def url_host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii").lower()


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; Unavailable saying "could not resolve <host>" when DNS has no answer."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:  # UnicodeError: a label too long for IDNA, which no DNS could answer
        why = (e.strerror or str(e)) if isinstance(e, OSError) else "not a valid host name"
        raise Unavailable(f"could not resolve {host} ({why})",
                          hint="check the host in the connector's base_url, and this machine's DNS") from e
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))


def _refuse(host: str, addresses: Iterable[IPAddress], what: str) -> None:
    for ip in addresses:
        reason = blocked_reason(ip)
        if reason:
            raise Forbidden(f"{what}: host {host} resolves to {ip}, a {reason} address; connectors may only "
                            "reach public addresses", hint=_FIX)


async def check_url(url: httpx.URL, *, what: str) -> None:
    """Raise Forbidden unless ``url`` is an http(s) URL whose host resolves only to allowed addresses."""
    if url.scheme not in ALLOWED_SCHEMES:
        raise Forbidden(f"{what}: the URL scheme {url.scheme or '(none)'!r} is refused; only http and https are "
                        "allowed", hint="fix the connector's base_url")
    if url.userinfo:
        raise Forbidden(f"{what}: URLs with embedded user:password are refused",
                        hint="put credentials in the connector's auth scheme, not in the URL")
    host = url_host(url)
    if not host:
        raise Forbidden(f"{what}: the URL has no host", hint="fix the connector's base_url")
    addresses = await resolve(host, url.port or (443 if url.scheme == "https" else 80))  # even for a private
    # host: a name that does not resolve is reported as such, not as a failed (or refused) connection
    if host not in private_ok_hosts.get():
        _refuse(host, addresses, what)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address (never re-resolves)."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except Unavailable as e:
            raise httpcore.ConnectError(e.message) from e
        if host.lower() not in private_ok_hosts.get():
            _refuse(host, addresses, "connection refused by the SSRF guard")
        error: Exception = httpcore.ConnectError(f"no address to connect to for {host}")
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are refused by the SSRF guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport() -> httpx.AsyncHTTPTransport:
    """httpx's transport, ignoring proxy environment variables, whose connections go through the guard."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(  # the supported transport has no network_backend argument
        ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=100, max_keepalive_connections=20,
        keepalive_expiry=5.0, network_backend=_GuardedBackend())
    return transport
