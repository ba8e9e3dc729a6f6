"""``limits`` counters in Redis that fall back to process memory while Redis does not answer.

Bastion's decision for a Redis outage: logins keep working and stay
throttled, per process. On the first Redis error the storage logs one
warning and counts in a :class:`~limits.aio.storage.MemoryStorage` of its
own; it asks Redis again (``limits``' health check, a PING) after 0.5 s,
then after twice as long each time it still does not answer (at most
:data:`MAX_PROBE_INTERVAL`), and goes back to it as soon as it answers.
Counts made in memory meanwhile stay in memory: an attacker gains at most
one window's allowance per process and outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits.aio.storage import MemoryStorage, MovingWindowSupport, RedisStorage, Storage
from limits.errors import StorageError

logger = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PROBE_INTERVAL = 0.5
MAX_PROBE_INTERVAL = 10.0

Counters = MemoryStorage | RedisStorage


class FallbackStorage(Storage, MovingWindowSupport):
    """A moving-window storage: ``shared`` while it answers, process memory while not."""

    STORAGE_SCHEME = None  # built by Bastion, never from a URI

    def __init__(
        self,
        shared: RedisStorage,
        *,
        purpose: str = "rate limits",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._shared = shared
        self._local = MemoryStorage()
        self._purpose = purpose
        self._clock = clock
        self._probe_at: float | None = None  # None: Redis is in use
        self._interval = FIRST_PROBE_INTERVAL

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return ()  # every shared-storage error is handled here, none is passed on

    @property
    def degraded(self) -> bool:
        """True while counting in process memory."""
        return self._probe_at is not None

    async def _use(self, operation: Callable[[Counters], Awaitable[T]]) -> T:
        if await self._shared_answers():
            try:
                return await operation(self._shared)
            except StorageError as exc:
                self._fall_back(exc)
        return await operation(self._local)

    async def _shared_answers(self) -> bool:
        if self._probe_at is None:
            return True
        now = self._clock()
        if now < self._probe_at:
            return False
        self._probe_at = now + self._interval  # one probe at a time
        if await self._shared.check():
            self._probe_at = None
            self._interval = FIRST_PROBE_INTERVAL
            logger.warning("Redis answers again: %s are shared again", self._purpose)
            return True
        self._interval = min(self._interval * 2, MAX_PROBE_INTERVAL)
        self._probe_at = self._clock() + self._interval
        return False

    def _fall_back(self, exc: StorageError) -> None:
        if self._probe_at is not None:
            return  # another request already switched
        self._probe_at = self._clock() + self._interval
        logger.warning(
            "Redis does not answer (%s): %s are counted in this process until it does",
            type(exc.storage_error).__name__,
            self._purpose,
        )

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._use(lambda storage: storage.incr(key, expiry, amount))

    async def get(self, key: str) -> int:
        return await self._use(lambda storage: storage.get(key))

    async def get_expiry(self, key: str) -> float:
        return await self._use(lambda storage: storage.get_expiry(key))

    async def check(self) -> bool:
        return True  # counting never stops: in memory when Redis does not answer

    async def reset(self) -> int | None:
        await self._local.reset()
        return await self._use(lambda storage: storage.reset())

    async def clear(self, key: str) -> None:
        await self._local.clear(key)
        await self._use(lambda storage: storage.clear(key))

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return await self._use(lambda storage: storage.acquire_entry(key, limit, expiry, amount))

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return await self._use(lambda storage: storage.get_moving_window(key, limit, expiry))
