"""Brute-force throttling of password checks with the ``limits`` library (moving window).

Two counters, both counting failures only:
- per (account, client IP): a stranger cannot lock a user out from elsewhere.
  The account is the one the identifier names, so a login by username and one
  by email count as one; an identifier that names none is counted by its
  canonical form, exactly like a known one;
- per client IP, across all identifiers.
Counters live in process memory, or in Redis when ``BASTION_REDIS_URL`` is
set so every worker and instance shares them; while Redis does not answer,
in process memory again (:mod:`bastion.services.counters`).
"""

from __future__ import annotations

import math
import time
from typing import Any

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bastion.config import DEFAULT_REDIS_TIMEOUT
from bastion.errors import Throttled
from bastion.redis_client import client_options
from bastion.services.counters import FallbackStorage

NAMESPACE = "bastion-login"


def subject(identifier: str, account_id: str | None) -> str:
    """Whose counter a login counts on: the account's (``account_id``, when the
    identifier names one), else the identifier's canonical form.

    The two kinds never meet: an identifier cannot pass for an account id.
    """
    if account_id is not None:
        return "id:" + account_id
    return "name:" + identifier.strip().casefold()


class LoginThrottle:
    def __init__(
        self,
        storage: Storage,
        *,
        account_failures: int,
        account_window: int,
        ip_failures: int,
        ip_window: int,
    ) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._account = RateLimitItemPerSecond(account_failures, account_window, NAMESPACE)
        self._ip = RateLimitItemPerSecond(ip_failures, ip_window, NAMESPACE)

    @staticmethod
    def _keys(
        username: str, ip: str | None, account_id: str | None
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        address = ip or "unknown"
        return ("account", subject(username, account_id), address), ("ip", address)

    async def check(self, *, username: str, ip: str | None, account_id: str | None = None) -> None:
        """Raise :class:`Throttled` if this attempt may not even be checked."""
        account_key, ip_key = self._keys(username, ip, account_id)
        for item, key in ((self._account, account_key), (self._ip, ip_key)):
            if not await self._limiter.test(item, *key):
                stats = await self._limiter.get_window_stats(item, *key)
                raise Throttled(retry_after=math.ceil(max(1.0, stats.reset_time - time.time())))

    async def failed(self, *, username: str, ip: str | None, account_id: str | None = None) -> None:
        account_key, ip_key = self._keys(username, ip, account_id)
        await self._limiter.hit(self._account, *account_key)
        await self._limiter.hit(self._ip, *ip_key)

    async def succeeded(
        self, *, username: str, ip: str | None, account_id: str | None = None
    ) -> None:
        """A correct password clears that account's counter for that IP."""
        account_key, _ = self._keys(username, ip, account_id)
        await self._limiter.clear(self._account, *account_key)

    async def ready(self) -> bool:
        return bool(await self._storage.check())


def create_storage(
    redis_url: str | None,
    *,
    timeout: float = DEFAULT_REDIS_TIMEOUT,
    purpose: str = "rate limits",
) -> Storage:
    """Process memory, or Redis (``timeout`` per command) and memory while Redis is down."""
    if redis_url:
        scheme, rest = redis_url.split("://", 1)
        options: dict[str, Any] = dict(client_options(timeout))  # passed on to redis-py
        shared = RedisStorage(
            f"async+{scheme}://{rest}", implementation="redispy", wrap_exceptions=True, **options
        )
        return FallbackStorage(shared, purpose=purpose)
    return MemoryStorage()
