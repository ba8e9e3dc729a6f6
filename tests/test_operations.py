"""Operations: migrations both ways, readiness, metrics, state fan-out over Redis, and the
server process's heap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.app import create_app
from bastion.config import Settings
from bastion.db import migrate
from bastion.runtime import build_runtime
from conftest import Api


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert "users" in await _tables(database_url)
    await asyncio.to_thread(migrate.downgrade, database_url, "base")
    assert await _tables(database_url) <= {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, database_url)
    assert {"users", "roles", "todos", "auth_sessions", "audit_events"} <= await _tables(
        database_url
    )


async def test_metrics_are_off_unless_configured(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 404


@pytest.mark.parametrize("settings_overrides", [{"metrics": True}])
async def test_metrics_count_requests_and_logins(api: Api) -> None:
    alice = await api.account()
    await api.login(alice.username, "Wrong-password-1")
    await api.client.get(f"/todos/{alice.id}", headers=alice.headers)
    text = (await api.client.get("/metrics")).text
    assert 'bastion_logins_total{outcome="succeeded"} 1.0' in text
    assert 'bastion_logins_total{outcome="failed"} 1.0' in text
    # Route templates, never raw paths with ids.
    assert 'route="/todos/{todo_id}"' in text and alice.id not in text


# No Redis listens there: startup waits 0.1 s, not 5, for a subscription that cannot come.
REDIS_DOWN = {"redis_url": "redis://127.0.0.1:1/0", "redis_startup_wait": 0.1}


@pytest.mark.parametrize("settings_overrides", [REDIS_DOWN])
async def test_readyz_names_the_dependency_that_is_down(
    api: Api, settings_overrides: dict[str, Any]
) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "redis"}


@pytest.fixture
async def two_instances(
    settings: Settings, redis_url: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two app instances on one database and Redis, with a long cache TTL: only the
    Redis fan-out can carry a change from one to the other within a second."""
    shared = Settings(
        database_url=settings.database_url,
        redis_url=redis_url,
        state_cache_ttl=60,
        _env_file=None,  # type: ignore[call-arg]
    )
    runtimes = [await build_runtime(shared), await build_runtime(shared)]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime=rt)), base_url="http://t"
        )
        for rt in runtimes
    ]
    try:
        yield clients
    finally:
        for client, rt in zip(clients, runtimes, strict=True):
            await client.aclose()
            await rt.close()


async def _within_a_second(check: Callable[[], Awaitable[bool]]) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 1.0
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.redis
async def test_todo_written_on_one_instance_is_listed_by_another_at_once(
    two_instances: list[httpx.AsyncClient], api: Api
) -> None:
    first, second = two_instances
    alice = await api.account()
    assert (await second.get("/todos", headers=alice.headers)).json()["total"] == 0
    assert (await first.post("/todos", json={"title": "x"}, headers=alice.headers)).status_code == 201

    async def listed() -> bool:
        return (await second.get("/todos", headers=alice.headers)).json()["total"] == 1

    assert await _within_a_second(listed)


@pytest.mark.redis
async def test_logout_on_one_instance_is_honoured_by_another_at_once(
    two_instances: list[httpx.AsyncClient], api: Api
) -> None:
    first, second = two_instances
    alice = await api.account()
    for client in two_instances:  # both instances now cache the live session
        assert (await client.get("/users/me", headers=alice.headers)).status_code == 200
    assert (await first.post("/auth/logout", headers=alice.headers)).status_code == 204

    async def refused() -> bool:
        return (await second.get("/users/me", headers=alice.headers)).status_code == 401

    assert await _within_a_second(refused)


async def test_a_server_app_freezes_its_startup_heap_out_of_collections(settings: Settings) -> None:
    """``bastion serve``'s app moves what exists after startup out of the collector's reach
    (a full collection of it takes tens of milliseconds); an embedded app leaves GC alone."""
    gc.unfreeze()
    embedded = create_app(settings)
    async with embedded.router.lifespan_context(embedded):
        assert gc.get_freeze_count() == 0
    served = create_app(settings, freeze_heap_after_startup=True)
    try:
        async with served.router.lifespan_context(served):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
