"""Which network destinations the network nodes may reach.

By default a graph may only talk to the public internet: a host that resolves to a
private, loopback, link-local, reserved, multicast or unspecified address is refused,
whatever spelling the URL uses (`localhost`, `[::ffff:127.0.0.1]`, `2130706433`,
`0x7f.1`), because every address the host resolves to is checked, not the text of the
URL. The check runs before each connection (each redirect hop too) and the node then
connects to the very addresses that were checked, so a DNS answer that changes between
the check and the connection cannot slip a private address in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from nodeloom.core.errors import NodeExecutionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: the well-known NAT64 prefix: its addresses stand for the IPv4 address in their last 32 bits
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
HOW_TO_ALLOW = "pass --allow-private-network to `nodeloom run`, or RunConfig(allow_private_network=True)"


class DestinationRefused(NodeExecutionError):
    """A URL the run may not reach: a scheme other than http(s), or a non-public address."""

    code = "destination_refused"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, retryable=False, details=details)


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL and the addresses its host resolved to, in the resolver's order."""

    url: httpx.URL
    port: int
    addresses: tuple[IPAddress, ...]


def display_url(url: httpx.URL) -> str:
    """The URL as errors show it: without user info or query, which may carry secrets."""
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}{url.path}"


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether `host` is one of `patterns`: a host name (or IP) exactly, or `*.suffix` for
    any name under that suffix (not the suffix itself). Letter case and a final dot are ignored."""
    name = host.lower().rstrip(".").strip("[]")
    for pattern in patterns:
        wanted = pattern.strip().lower().rstrip(".").strip("[]")
        if wanted.startswith("*.") and len(wanted) > 2:
            if name.endswith(wanted[1:]):
                return True
        elif wanted and name == wanted:
            return True
    return False


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_not_public(address: IPAddress) -> str | None:
    """Why `address` is not a public internet address ("loopback", "private", ...), or None.

    An IPv6 address that stands for an IPv4 one is judged by that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return why_not_public(inner)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((reason for reason, applies in checks if applies), None)


def parse_url(text: str) -> httpx.URL:
    """Parse an http(s) URL with a host; anything else is refused with a clear message."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise DestinationRefused(f"not a valid URL: {error}") from None
    if url.scheme not in ALLOWED_SCHEMES:
        raise DestinationRefused(
            f"only http and https URLs can be requested, not {url.scheme or 'a URL without a scheme'!r}",
            details={"scheme": url.scheme},
        )
    if not url.host:
        raise DestinationRefused(f"the URL {text[:80]!r} has no host")
    return url


def _lookup(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        # EAI_AGAIN is a resolver hiccup worth another try; anything else is a wrong name
        raise NodeExecutionError(
            f"cannot resolve host {host!r}: {error.strerror}",
            retryable=error.errno == socket.EAI_AGAIN,
            details={"host": host},
        ) from None
    except UnicodeError:
        raise DestinationRefused(f"host {host!r} is not a valid host name") from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def resolve_destination(url: httpx.URL, *, allow_private: bool) -> Destination:
    """Resolve the URL's host and check every address it resolves to.

    Raises `DestinationRefused` (not retryable) naming the host, the address and how to
    allow private networks, unless `allow_private` is set. Blocks on DNS: call it from a
    thread in async code.
    """
    if url.scheme not in ALLOWED_SCHEMES:
        raise DestinationRefused(f"only http and https URLs can be requested, not {url.scheme!r}")
    port = url.port or _DEFAULT_PORTS[url.scheme]
    addresses = _lookup(url.host, port)
    if not addresses:
        raise NodeExecutionError(f"host {url.host!r} resolved to no address", details={"host": url.host})
    if not allow_private:
        for address in addresses:
            refused = refusal(url, address)
            if refused is not None:
                raise refused
    return Destination(url, port, tuple(addresses))


def refusal(url: httpx.URL, address: IPAddress) -> DestinationRefused | None:
    """The error refusing `url`, whose host is or resolves to `address`, when that is not public."""
    reason = why_not_public(address)
    if reason is None:
        return None
    resolved = "" if url.host == str(address) else f" resolves to {address}, which"
    if isinstance(address, ipaddress.IPv6Address) and embedded_ipv4(address) is not None:
        resolved += f" stands for {embedded_ipv4(address)} and"
    return DestinationRefused(
        f"refused {display_url(url)}: host {url.host!r}{resolved} is a {reason} address, "
        f"and this run may only reach public addresses; to allow it, {HOW_TO_ALLOW}",
        details={"host": url.host, "address": str(address), "reason": reason},
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host stands for without asking DNS: an IP in any spelling the resolver takes
    (`127.0.0.1`, `2130706433`, `[::1]`), or loopback for `localhost` and names under it (RFC 6761);
    None for any other name."""
    name = host.lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        infos = socket.getaddrinfo(name, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0]) if infos else None


def refusal_before_lookup(text: str, *, allow_private: bool) -> DestinationRefused | None:
    """What can be refused of a URL before the run, with no DNS query: a scheme other than http(s),
    no host, or a host that is a non-public address by itself (an IP, `localhost`).

    A host name is not looked up here: the answer may change before the run connects, and the
    node checks every address the name resolves to when it does."""
    try:
        url = parse_url(text)
    except DestinationRefused as refused:
        return refused
    if allow_private:
        return None
    address = literal_address(url.host)
    return None if address is None else refusal(url, address)


def redirect_destination(current: httpx.URL, location: str, *, allow_private: bool) -> Destination:
    """The checked destination of a redirect from `current` to `location` (relative or absolute)."""
    try:
        target = current.join(location)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise DestinationRefused(f"redirect from {display_url(current)} to an invalid URL: {error}") from None
    if target.scheme not in ALLOWED_SCHEMES or not target.host:
        raise DestinationRefused(
            f"redirect from {display_url(current)} to a {target.scheme or 'relative'!r} URL refused: "
            "only http and https URLs can be requested"
        )
    try:
        return resolve_destination(target, allow_private=allow_private)
    except DestinationRefused as refused:
        raise DestinationRefused(
            f"redirect from {display_url(current)}: {refused.message}", details=refused.details
        ) from None
