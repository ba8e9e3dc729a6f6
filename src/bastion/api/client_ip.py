"""The client's address: the socket peer, or X-Forwarded-For only from a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(connection: HTTPConnection, trusted: Sequence[Network]) -> str | None:
    """Walk X-Forwarded-For from the right while the hop is a trusted proxy."""
    peer = connection.client.host if connection.client else None
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = connection.headers.get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    address = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        address = hop
        if not _trusted(hop, trusted):
            break
    return address
