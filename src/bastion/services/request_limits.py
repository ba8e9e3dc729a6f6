"""Quotas on requests that send mail (per address, per IP), with ``limits``' moving window.

Unlike the login throttle, which counts failures only, a quota counts every
request: each one may send a message.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bastion.errors import Throttled

NAMESPACE = "bastion-mail"


class Quota:
    """At most ``limit`` requests per key within ``window`` seconds."""

    def __init__(self, storage: Storage, *, name: str, limit: int, window: int) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(limit, window, NAMESPACE)
        self._name = name

    async def take(self, key: str) -> None:
        """Count one request for ``key``; :class:`Throttled` when the quota is spent."""
        if not await self._limiter.hit(self._item, self._name, key):
            stats = await self._limiter.get_window_stats(self._item, self._name, key)
            raise Throttled(retry_after=math.ceil(max(1.0, stats.reset_time - time.time())))
