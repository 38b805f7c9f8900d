"""The client's IP address and the caller key built on it (DESIGN §3).

The only place that reads ``X-Forwarded-For``: a proxy header is a claim anyone can send,
so it is believed only when the direct peer is a configured trusted proxy
(``XINTU_TRUSTED_PROXIES``, empty by default). Then the right-most address that is not a
trusted proxy is the client: every proxy appends the address it saw, and addresses to the
left of the first untrusted hop were written by the client itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.requests import HTTPConnection

IPNetwork = IPv4Network | IPv6Network
UNKNOWN = "unknown"


def _parse(value: str) -> IPv4Address | IPv6Address | None:
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPv4Address | IPv6Address, proxies: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in proxies)


def resolve_client_ip(
    peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]
) -> str:
    """The client's address: the peer, or from ``X-Forwarded-For`` when the peer is a
    trusted proxy (the right-most untrusted hop). A hop that is not an IP address makes
    the whole header worthless, and the peer is used."""
    if peer is None:
        return UNKNOWN
    peer_address = _parse(peer)
    if peer_address is None:
        return peer
    if not proxies or not forwarded_for or not _trusted(peer_address, proxies):
        return str(peer_address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = peer_address
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return str(peer_address)
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def client_ip(connection: HTTPConnection) -> str:
    """The client's IP address for this request (computed once per request)."""
    cached: str | None = getattr(connection.state, "client_ip", None)
    if cached is not None:
        return cached
    proxies: Sequence[IPNetwork] = connection.app.state.settings.trusted_proxies
    peer = connection.client.host if connection.client else None
    value = resolve_client_ip(peer, connection.headers.getlist("x-forwarded-for"), proxies)
    connection.state.client_ip = value
    return value


def ip_caller_key(ip: str) -> str:
    """The caller key of an address: ``ip:<IPv4>``, or the /64 of an IPv6 address, since
    one subscriber is handed a whole /64 and could otherwise rotate through it."""
    if ":" not in ip:
        return f"ip:{ip}"
    try:
        network = IPv6Network(f"{ip}/64", strict=False)
    except ValueError:
        return f"ip:{ip}"
    return f"ip:{network}"
