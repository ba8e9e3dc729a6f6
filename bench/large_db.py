"""Latency of login, GET /users/me and GET /todos with a million users and todos, against a
thousand-user database, on SQLite and PostgreSQL (run with Bastion's own virtualenv)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.db import migrate
from bastion.security.passwords import PasswordHasher
from run import BASTION_BIN, RESULTS, Client, Options, Peer, log, serving

PASSWORD = "bench-password-123"
SIZES = (1_000, 1_000_000)
TODOS_OF_BENCH_USER = 20
CHUNK = 50_000
TARGET_RATIO = 1.25
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(n_users: int, hashed: str) -> Iterator[tuple[list[tuple[Any, ...]], ...]]:
    """Users, their roles and one todo each (twenty for the bench user), in chunks."""
    for start in range(0, n_users, CHUNK):
        users, roles, todos = [], [], []
        for i in range(start, min(start + CHUNK, n_users)):
            user_id, at = str(uuid.UUID(int=i + 1)), EPOCH + timedelta(seconds=i)
            name = f"u{i}"
            users.append((user_id, name, name, f"{name}@example.com", f"{name}@example.com",
                          hashed, True, at, at))
            roles.append((user_id, "user"))
            for t in range(TODOS_OF_BENCH_USER if i == n_users // 2 else 1):
                todos.append((str(uuid.uuid4()), user_id, f"todo {t}", False, at, at))
        yield users, roles, todos


USER_COLUMNS = ("id", "username", "username_canonical", "email", "email_canonical",
                "hashed_password", "is_active", "created_at", "updated_at")
TODO_COLUMNS = ("id", "owner_id", "title", "done", "created_at", "updated_at")


def seed_sqlite(path: Path, n_users: int, hashed: str) -> None:
    stamp = lambda at: at.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's format
    with sqlite3.connect(path) as db:
        for users, roles, todos in _rows(n_users, hashed):
            db.executemany(f"INSERT INTO users ({','.join(USER_COLUMNS)}) VALUES "
                           f"({','.join('?' * len(USER_COLUMNS))})",
                           [(*u[:7], stamp(u[7]), stamp(u[8])) for u in users])
            db.executemany("INSERT INTO user_roles VALUES (?, ?)", roles)
            db.executemany(f"INSERT INTO todos ({','.join(TODO_COLUMNS)}) VALUES "
                           f"({','.join('?' * len(TODO_COLUMNS))})",
                           [(*t[:4], stamp(t[4]), stamp(t[5])) for t in todos])
        db.execute("ANALYZE")


async def seed_postgres(url: str, n_users: int, hashed: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert raw is not None
            for users, roles, todos in _rows(n_users, hashed):
                await raw.copy_records_to_table("users", records=users, columns=USER_COLUMNS)
                await raw.copy_records_to_table("user_roles", records=roles)
                await raw.copy_records_to_table("todos", records=todos, columns=TODO_COLUMNS)
            await raw.execute("ANALYZE")
    finally:
        await engine.dispose()


async def recreate_postgres(admin_url: str, name: str) -> str:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def prepare(backend: str, n_users: int, workdir: Path, postgres: str, hashed: str) -> str:
    started = time.monotonic()
    if backend == "sqlite":
        path = workdir / f"bastion-{n_users}.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate.upgrade(url)
        seed_sqlite(path, n_users, hashed)
    else:
        url = asyncio.run(recreate_postgres(postgres, f"bastion_bench_{n_users}"))
        migrate.upgrade(url)
        asyncio.run(seed_postgres(url, n_users, hashed))
    log(f"{backend}: {n_users:,} users and todos loaded in {time.monotonic() - started:.0f}s")
    return url


def measure(url: str, n_users: int, opts: Options) -> dict[str, Any]:
    # Every per-process cache off: each request reads the database it is measured against.
    peer = Peer(
        name="bastion", label="Bastion",
        argv=(str(BASTION_BIN / "bastion"), "serve", "--host", "127.0.0.1", "--port", "{port}"),
        measure=lambda *_: {},
        env={"BASTION_DATABASE_URL": url, "BASTION_LOG_LEVEL": "warning",
             "BASTION_STATE_CACHE_TTL": "0", "BASTION_LOGIN_MAX_FAILURES": "1000000"},
    )
    username = f"u{n_users // 2}"
    with serving(peer) as server, Client(server.base, opts) as client:
        token = client.call("POST", "/auth/token",
                            form={"username": username, "password": PASSWORD})["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        form = f"username={username}&password={PASSWORD}"
        return {
            "login": client.measure("login", "/auth/token", method="POST", body=form,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"}),
            "me": client.measure("me", "/users/me", headers=bearer),
            "todos": client.measure("todos", "/todos?limit=20", headers=bearer),
        }


def report(results: dict[str, dict[int, dict[str, Any]]]) -> str:
    small, large = SIZES
    lines = [
        "# Bastion with a million users",
        "",
        (f"p50 / p99 latency (ms) with {large:,} users and {large:,} todos against {small:,}, "
         "8 connections, every cache off (`BASTION_STATE_CACHE_TTL=0`), server pinned to CPU 0."),
        "",
        "| database | endpoint | p50 small | p50 large | p99 small | p99 large | p50 ratio | met (≤ 1.25×) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for backend, by_size in results.items():
        for endpoint in ("login", "me", "todos"):
            a, b = by_size[small][endpoint], by_size[large][endpoint]
            ratio = b["p50_ms"] / a["p50_ms"]
            lines.append(
                f"| {backend} | {endpoint} | {a['p50_ms']:.1f} | {b['p50_ms']:.1f} | "
                f"{a['p99_ms']:.1f} | {b['p99_ms']:.1f} | {ratio:.2f}× | "
                f"{'met' if ratio <= TARGET_RATIO else 'not met'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
                        help="a URL whose server may get bastion_bench_* databases")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    opts = Options(rounds=1, duration=args.duration, warmup=1, hash_n=1)
    hashed = asyncio.run(PasswordHasher(memory_cost=19_456, time_cost=2, threads=1).hash(PASSWORD))
    results: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        for backend in args.backends.split(","):
            for n_users in SIZES:
                url = prepare(backend, n_users, Path(tmp), args.postgres, hashed)
                results.setdefault(backend, {})[n_users] = measure(url, n_users, opts)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"large-db-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report(results)
    (RESULTS / f"large-db-{stamp}.md").write_text(markdown)
    sys.stdout.write(markdown)


if __name__ == "__main__":
    main()
