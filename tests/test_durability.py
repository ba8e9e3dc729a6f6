"""Crash durability: a write acknowledged with a 2xx survives SIGKILL of the server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from servers import PASSWORD, Server, login, register, running_server, start_server

pytestmark = pytest.mark.slow
LOAD_SECONDS = 2.0


@dataclass
class Acknowledged:
    usernames: list[str] = field(default_factory=list)
    todo_ids: list[str] = field(default_factory=list)
    refresh_tokens: list[str] = field(default_factory=list)


async def _write_load(server: Server, seeds: list[dict[str, str]], acked: Acknowledged) -> None:
    """Registrations, todo creates and refreshes from many clients until the server dies."""
    names = itertools.count()

    async def registrations(client: httpx.AsyncClient) -> None:
        while True:
            username = f"crash{next(names)}"
            body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
            if (await client.post("/auth/register", json=body)).status_code == 201:
                acked.usernames.append(username)

    async def todos(client: httpx.AsyncClient, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        for i in itertools.count():
            response = await client.post("/todos", json={"title": f"t{i}"}, headers=headers)
            if response.status_code == 201:
                acked.todo_ids.append(response.json()["id"])

    async def refreshes(client: httpx.AsyncClient, refresh_token: str) -> None:
        while True:
            data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
            response = await client.post("/auth/token", data=data)
            if response.status_code != 200:
                return
            refresh_token = response.json()["refresh_token"]
            acked.refresh_tokens.append(refresh_token)

    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=10) as client:
        workers = [registrations(client) for _ in range(3)]
        workers += [todos(client, seed["access_token"]) for seed in seeds for _ in range(3)]
        workers += [refreshes(client, seed["refresh_token"]) for seed in seeds]
        tasks = [asyncio.ensure_future(worker) for worker in workers]
        await asyncio.sleep(LOAD_SECONDS)
        server.kill()
        await asyncio.gather(*tasks, return_exceptions=True)


def _run_and_kill(server: Server) -> Acknowledged:
    seeds = []
    for i in range(2):
        register(server.base, f"seed{i}")
        seeds.append(login(server.base, f"seed{i}"))
    acked = Acknowledged()
    asyncio.run(_write_load(server, seeds, acked))
    assert acked.usernames and acked.todo_ids and acked.refresh_tokens
    return acked


async def _stored(url: str) -> tuple[set[str], set[str], set[str], str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            users = set((await connection.execute(text("SELECT username FROM users"))).scalars())
            todos = set((await connection.execute(text("SELECT id FROM todos"))).scalars())
            hashes = set(
                (await connection.execute(text("SELECT token_hash FROM refresh_tokens"))).scalars()
            )
            key = (
                await connection.execute(
                    text("SELECT value FROM instance_secrets WHERE name = 'token_hash_key'")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return users, todos, hashes, str(key)


def _assert_all_present(url: str, acked: Acknowledged) -> None:
    users, todos, hashes, key = asyncio.run(_stored(url))
    digest = lambda token: hmac.new(bytes.fromhex(key), token.encode(), hashlib.sha256).hexdigest()
    assert set(acked.usernames) <= users
    assert set(acked.todo_ids) <= todos
    assert {digest(token) for token in acked.refresh_tokens} <= hashes


def _assert_serves_again(workdir: Path, **env: str) -> None:
    with running_server(workdir, **env) as server:
        assert httpx.get(f"{server.base}/readyz").status_code == 200
        assert login(server.base, "seed0")["access_token"]


def test_sqlite_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    acked = _run_and_kill(server)
    database = tmp_path / "serve.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    _assert_all_present(f"sqlite+aiosqlite:///{database}", acked)
    _assert_serves_again(tmp_path)


@pytest.mark.postgres
def test_postgres_acknowledged_writes_survive_sigkill(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from conftest import _truncate_postgres

    database = request.getfixturevalue("postgres_migrated")
    asyncio.run(_truncate_postgres(database))
    env = {"BASTION_DATABASE_URL": database}
    server = start_server(tmp_path, **env)
    acked = _run_and_kill(server)
    _assert_all_present(database, acked)
    _assert_serves_again(tmp_path, **env)
