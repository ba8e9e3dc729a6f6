"""Redis clients with short timeouts: a stopped or frozen Redis must not hold a request.

Every client Bastion makes (fan-out, readiness, ``limits``' storage) is built
from :func:`client_options`. ``Redis.from_url`` retries nothing, so one
command waits at most ``timeout`` seconds to connect and as long for a reply.
"""

from __future__ import annotations

from typing import TypedDict

from redis.asyncio import Redis


class Timeouts(TypedDict):
    socket_timeout: float
    socket_connect_timeout: float


def client_options(timeout: float) -> Timeouts:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` (and ``limits``' Redis storage)."""
    return Timeouts(socket_timeout=timeout, socket_connect_timeout=timeout)


def create_client(url: str, *, timeout: float) -> Redis:
    return Redis.from_url(url, **client_options(timeout))
