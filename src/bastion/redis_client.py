"""Redis clients with short timeouts: a stopped or frozen Redis must not hold a request.

Every client Bastion makes (fan-out, readiness, ``limits``' storage) is built
from :func:`client_options`: a command waits at most ``timeout`` seconds to
connect and as long for a reply, and is tried again once, at once, only when
its connection was lost (a pooled connection that a restarted Redis closed).
"""

from __future__ import annotations

from typing import TypedDict

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


class ClientOptions(TypedDict):
    socket_timeout: float
    socket_connect_timeout: float
    retry: Retry


def client_options(timeout: float) -> ClientOptions:
    """Keyword arguments for ``redis.asyncio.Redis.from_url`` (and ``limits``' Redis storage)."""
    return ClientOptions(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )


def create_client(url: str, *, timeout: float) -> Redis:
    return Redis.from_url(url, **client_options(timeout))
