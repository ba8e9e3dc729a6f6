"""Login counters while Redis is down or frozen: in process memory, quickly, and back to Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from bastion.errors import Throttled
from bastion.services import counters
from bastion.services.counters import FallbackStorage
from bastion.services.throttle import LoginThrottle, create_storage


def _throttle(redis_url: str) -> tuple[LoginThrottle, FallbackStorage]:
    storage = create_storage(redis_url, timeout=0.25, purpose="login counters")
    assert isinstance(storage, FallbackStorage)
    throttle = LoginThrottle(
        storage, account_failures=3, account_window=60, ip_failures=100, ip_window=60
    )
    return throttle, storage


async def _fail_until_throttled(throttle: LoginThrottle, username: str) -> int:
    for attempt in range(1, 10):
        try:
            await throttle.check(username=username, ip="192.0.2.1")
        except Throttled:
            return attempt
        await throttle.failed(username=username, ip="192.0.2.1")
    return 0


@pytest.fixture
async def frozen_redis() -> AsyncIterator[str]:
    """A listener that accepts connections and never answers, as a SIGSTOPped Redis."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in held:
        writer.close()
    server.close()


async def test_a_stopped_redis_falls_back_to_memory_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bastion.services.counters")
    throttle, storage = _throttle("redis://127.0.0.1:1/0")
    assert await _fail_until_throttled(throttle, "alice") == 4
    assert storage.degraded
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "Redis does not answer (ConnectionError): login counters are counted in this "
        "process until it does"
    )


async def test_a_frozen_redis_costs_one_timeout_not_one_per_call(frozen_redis: str) -> None:
    throttle, storage = _throttle(frozen_redis)
    started = time.monotonic()
    assert await _fail_until_throttled(throttle, "bob") == 4
    assert time.monotonic() - started < 1.0
    assert storage.degraded


async def test_redis_is_probed_with_backoff_and_used_again_once_it_answers(
    frozen_redis: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    storage = create_storage(frozen_redis, timeout=0.25)
    assert isinstance(storage, FallbackStorage)
    monkeypatch.setattr(storage, "_clock", lambda: now[0])
    await storage.incr("k", 60)  # times out, falls back
    assert storage.degraded
    probes: list[float] = []
    shared = storage._shared

    async def check() -> bool:
        probes.append(now[0])
        return False

    monkeypatch.setattr(shared, "check", check)
    for step in range(40):
        now[0] = step * 0.5
        await storage.get("k")
    assert probes == [0.5, 1.5, 3.5, 7.5, 15.5]  # 1, 2, 4, 8 s apart, then at most every 10
    real = create_storage(redis_url, timeout=0.25)
    assert isinstance(real, FallbackStorage)
    monkeypatch.setattr(storage, "_shared", real._shared)
    now[0] = 100.0
    assert await storage.incr("bastion-test-counter", 60) >= 1
    assert not storage.degraded
    await real._shared.clear("bastion-test-counter")


def test_probe_intervals_are_capped() -> None:
    assert counters.FIRST_PROBE_INTERVAL < counters.MAX_PROBE_INTERVAL <= 10
