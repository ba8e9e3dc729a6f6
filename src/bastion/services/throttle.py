"""Brute-force throttling of password checks with the ``limits`` library (moving window).

Two counters, both counting failures only:
- per (canonical username, client IP): a stranger cannot lock a user out
  from elsewhere, and unknown usernames are counted exactly like known ones;
- per client IP, across all usernames.
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
    def _keys(username: str, ip: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        address = ip or "unknown"
        return ("account", username.strip().casefold(), address), ("ip", address)

    async def check(self, *, username: str, ip: str | None) -> None:
        """Raise :class:`Throttled` if this attempt may not even be checked."""
        account_key, ip_key = self._keys(username, ip)
        for item, key in ((self._account, account_key), (self._ip, ip_key)):
            if not await self._limiter.test(item, *key):
                stats = await self._limiter.get_window_stats(item, *key)
                raise Throttled(retry_after=math.ceil(max(1.0, stats.reset_time - time.time())))

    async def failed(self, *, username: str, ip: str | None) -> None:
        account_key, ip_key = self._keys(username, ip)
        await self._limiter.hit(self._account, *account_key)
        await self._limiter.hit(self._ip, *ip_key)

    async def succeeded(self, *, username: str, ip: str | None) -> None:
        """A correct password clears that account's counter for that IP."""
        account_key, _ = self._keys(username, ip)
        await self._limiter.clear(self._account, *account_key)

    async def ready(self) -> bool:
        return bool(await self._storage.check())


def create_storage(
    redis_url: str | None,
    *,
    timeout: float = DEFAULT_REDIS_TIMEOUT,
    purpose: str = "rate limits",
) -> Storage:
    """Process memory, or Redis (``timeout`` per command) falling back to memory while it is down."""
    if redis_url:
        scheme, rest = redis_url.split("://", 1)
        options: dict[str, Any] = dict(client_options(timeout))  # passed on to redis-py
        shared = RedisStorage(
            f"async+{scheme}://{rest}", implementation="redispy", wrap_exceptions=True, **options
        )
        return FallbackStorage(shared, purpose=purpose)
    return MemoryStorage()
