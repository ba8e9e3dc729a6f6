"""Operations: migrations both ways, readiness, metrics, and state fan-out over Redis."""

from __future__ import annotations

import asyncio
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


async def test_metrics_count_requests_and_logins(api: Api) -> None:
    alice = await api.account()
    await api.login(alice.username, "Wrong-password-1")
    await api.client.get(f"/todos/{alice.id}", headers=alice.headers)
    text = (await api.client.get("/metrics")).text
    assert 'bastion_logins_total{outcome="succeeded"} 1.0' in text
    assert 'bastion_logins_total{outcome="failed"} 1.0' in text
    # Route templates, never raw paths with ids.
    assert 'route="/todos/{todo_id}"' in text and alice.id not in text


@pytest.mark.parametrize("settings_overrides", [{"redis_url": "redis://127.0.0.1:1/0"}])
async def test_readyz_names_the_dependency_that_is_down(
    api: Api, settings_overrides: dict[str, Any]
) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "redis"}


@pytest.mark.redis
async def test_todo_written_on_one_instance_is_listed_by_another_at_once(
    settings: Settings, redis_url: str, api: Api
) -> None:
    """Cached todo pages follow writes made by another instance (long TTL: fan-out only)."""
    shared = Settings(
        database_url=settings.database_url,
        redis_url=redis_url,
        state_cache_ttl=60,
        _env_file=None,  # type: ignore[call-arg]
    )
    first, second = await build_runtime(shared), await build_runtime(shared)
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime=rt)), base_url="http://t"
        )
        for rt in (first, second)
    ]
    try:
        alice = await api.account()
        assert (await clients[1].get("/todos", headers=alice.headers)).json()["total"] == 0
        created = await clients[0].post("/todos", json={"title": "x"}, headers=alice.headers)
        assert created.status_code == 201
        deadline = asyncio.get_running_loop().time() + 1.0
        total = 0
        while total == 0 and asyncio.get_running_loop().time() < deadline:
            total = (await clients[1].get("/todos", headers=alice.headers)).json()["total"]
            await asyncio.sleep(0.02)
        assert total == 1
    finally:
        for client in clients:
            await client.aclose()
        await first.close()
        await second.close()


@pytest.mark.redis
async def test_logout_on_one_instance_is_honoured_by_another_at_once(
    settings: Settings, redis_url: str, api: Api
) -> None:
    """A long cache TTL proves the fan-out, not the TTL, carries the change."""
    shared = Settings(
        database_url=settings.database_url,
        redis_url=redis_url,
        state_cache_ttl=60,
        _env_file=None,  # type: ignore[call-arg]
    )
    first, second = await build_runtime(shared), await build_runtime(shared)
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime=rt)), base_url="http://t"
        )
        for rt in (first, second)
    ]
    try:
        alice = await api.account()
        headers = alice.headers
        for client in clients:  # both instances now cache the live session
            assert (await client.get("/users/me", headers=headers)).status_code == 200
        assert (await clients[0].post("/auth/logout", headers=headers)).status_code == 204
        deadline = asyncio.get_running_loop().time() + 1.0
        status = 200
        while status == 200 and asyncio.get_running_loop().time() < deadline:
            status = (await clients[1].get("/users/me", headers=headers)).status_code
            await asyncio.sleep(0.02)
        assert status == 401
    finally:
        for client in clients:
            await client.aclose()
        await first.close()
        await second.close()
