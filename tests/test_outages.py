"""A database or Redis that is down answers 503 with Retry-After, through Bastion's middleware,
logged once per dependency and interval; /readyz names what is down or refuses writes."""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.app import create_app
from bastion.config import Settings
from bastion.db import probe
from bastion.outages import OutageLog, describe, failed_dependency
from bastion.runtime import Runtime, build_runtime
from conftest import Api


def _sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # as the driver sets it
    return error


def _wrapped(error: Exception) -> OperationalError:
    return OperationalError("INSERT INTO users VALUES (?)", ("secret-parameter",), error)


def _disk_full(runtime: Runtime) -> Exception:
    """What the backend's driver raises when its disk is full."""
    if runtime.settings.is_sqlite:
        return _sqlite_error("database or disk is full", 13)
    error = runtime.engine.dialect.loaded_dbapi.OperationalError("could not extend file")
    error.sqlstate = "53100"  # type: ignore[attr-defined]  # disk_full
    return error


def _fail_commits(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> None:
    error = _disk_full(runtime)

    def do_commit(dbapi_connection: Any) -> None:
        raise error

    monkeypatch.setattr(runtime.engine.dialect, "do_commit", do_commit)


async def _refuse_connections(monkeypatch: pytest.MonkeyPatch, runtime: Runtime) -> None:
    """The database server is gone: pooled connections closed, new ones refused."""

    def connect(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    for engine in {runtime.engine, runtime.read_engine}:
        await engine.dispose()
        monkeypatch.setattr(engine.dialect, "connect", connect)


def _assert_503(response: httpx.Response, dependency: str = "database") -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"] == "application/json"
    assert dependency in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers["x-request-id"]) == 16


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (_wrapped(_sqlite_error("database or disk is full", 13)), "database"),
        (_wrapped(_sqlite_error("database is locked", 5)), "database"),
        (_wrapped(_sqlite_error("disk I/O error", 522)), "database"),  # SQLITE_IOERR_SHORT_READ
        (ConnectionRefusedError(111, "refused"), "database"),
        (TimeoutError(), "database"),
        (DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True), "database"),
        (__import__("redis").exceptions.TimeoutError("Timeout reading from socket"), "redis"),
        (_wrapped(_sqlite_error("no such table: users", 1)), None),  # a bug, not an outage
        (IntegrityError("INSERT", None, Exception("UNIQUE constraint failed")), None),
        (ValueError("boom"), None),
        (FileNotFoundError(2, "No such file or directory"), None),
        (OSError(28, "No space left on device"), "database"),
    ],
)
def test_failures_are_told_from_bugs(error: Exception, dependency: str | None) -> None:
    assert failed_dependency(error) == dependency


def test_a_failure_is_described_without_sql_or_parameters() -> None:
    text = describe(_wrapped(_sqlite_error("database or disk is full", 13)))
    assert text == "OperationalError: database or disk is full"


def test_outages_are_logged_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = OutageLog(interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="bastion.outages")
    for _ in range(50):
        log.report("database", ConnectionRefusedError(111, "refused"))
    log.report("redis", TimeoutError())
    now[0] = 10.5
    log.report("database", ConnectionRefusedError(111, "refused"))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("database unavailable")
    assert lines[1].startswith("redis unavailable")
    assert lines[2].endswith("49 more since the last line")


async def test_a_failed_commit_is_a_503_and_nothing_is_kept(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await api.account()
    with monkeypatch.context() as patch:
        _fail_commits(patch, runtime)
        response = await api.client.post("/todos", json={"title": "lost?"}, headers=alice.headers)
        _assert_503(response)
        registered = await api.register()
        _assert_503(registered)
        assert registered.headers["cache-control"] == "no-store"
    listed = await api.client.get("/todos", headers=alice.headers)
    assert listed.json()["total"] == 0
    created = await api.client.post("/todos", json={"title": "kept"}, headers=alice.headers)
    assert created.status_code == 201


async def test_a_login_while_the_database_is_gone_is_an_oauth_503(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await api.account()
    await _refuse_connections(monkeypatch, runtime)
    response = await api.login(alice.username)
    _assert_503(response)
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["cache-control"] == "no-store"
    assert (await api.client.get("/readyz")).json() == {
        "status": "unavailable",
        "reason": "database",
    }
    monkeypatch.undo()
    assert (await api.login(alice.username)).status_code == 200
    assert (await api.client.get("/readyz")).status_code == 200


async def test_readyz_fails_when_the_database_file_cannot_grow(
    api: Api, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    if not settings.is_sqlite:
        pytest.skip("a SQLite file's filesystem")
    monkeypatch.setattr(probe, "MIN_FREE_BYTES", 1 << 62)
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "database"


# No Redis listens there: startup waits 0.1 s, not 5, for a subscription that cannot come.
REDIS_DOWN = {"redis_url": "redis://127.0.0.1:1/0", "redis_startup_wait": 0.1}


async def test_startup_waits_for_a_subscription_as_long_as_redis_startup_wait(
    settings: Settings,
) -> None:
    """Redis refuses the connection: startup gives up on the subscription after
    REDIS_STARTUP_WAIT (default 5 s), serves without it and keeps trying in the background."""
    down = settings.model_copy(update={"redis_url": SecretStr(REDIS_DOWN["redis_url"])})
    assert down.redis_startup_wait == 5.0
    started = time.monotonic()
    runtime = await build_runtime(down.model_copy(update={"redis_startup_wait": 0.5}))
    elapsed = time.monotonic() - started
    try:
        assert runtime.events is not None
        assert await runtime.unready() == "redis"
    finally:
        await runtime.close()
    assert 0.5 <= elapsed < 4.0, elapsed


@pytest.mark.parametrize("settings_overrides", [REDIS_DOWN])
async def test_logins_work_and_stay_throttled_while_redis_is_down(
    api: Api, settings_overrides: dict[str, Any]
) -> None:
    alice = await api.account()  # logged in: the counters fell back to this process
    codes = [(await api.login(alice.username, "Wrong-password-1")).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert (await api.client.get("/users/me", headers=alice.headers)).status_code == 200
    assert (await api.client.get("/readyz")).json()["reason"] == "redis"


async def test_a_bug_is_a_json_500_that_closes_the_connection(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert response.headers["connection"] == "close"


async def test_a_read_only_postgres_refuses_writes(runtime: Runtime, settings: Any) -> None:
    if settings.is_sqlite:
        pytest.skip("PostgreSQL's read-only transactions")
    assert await probe.accepts_writes(runtime.engine)
    read_only = create_async_engine(
        settings.database_url,
        connect_args={"server_settings": {"default_transaction_read_only": "on"}},
    )
    try:
        assert not await probe.accepts_writes(read_only)
    finally:
        await read_only.dispose()
