"""Shared fixtures: a fresh database per test (SQLite always, PostgreSQL when configured),
an app built by the factory, and an ``api`` helper that registers and logs in subjects."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bastion.app import create_app
from bastion.config import Settings
from bastion.db import migrate
from bastion.db.engine import transaction
from bastion.runtime import Runtime, build_runtime
from bastion.services import users

pytest_plugins = ["smtp_inbox"]  # inbox, smtp_url: a real SMTP server on loopback
POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL")
PASSWORD = "violet-Harbor-91-lantern"
SKIP_POSTGRES = "BASTION_TEST_POSTGRES_URL is not set: PostgreSQL runs skipped (CI sets it)"
SKIP_REDIS = "BASTION_TEST_REDIS_URL is not set: Redis tests skipped (CI sets it)"
# Emptied before each test, with every table that references them (as TRUNCATE ... CASCADE
# would); roles, scopes and role_scopes go back to what the migrations seed.
_PG_TABLES = frozenset({
    "audit_events", "refresh_tokens", "auth_sessions", "api_keys", "todos", "user_roles",
    "users", "signing_keys", "instance_secrets", "resource_servers", "resource_server_scopes",
    "oauth_clients",
})
_PG_FOREIGN_KEYS = """
SELECT child.relname, parent.relname
FROM pg_constraint c
JOIN pg_class child ON child.oid = c.conrelid
JOIN pg_class parent ON parent.oid = c.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE c.contype = 'f' AND n.nspname = current_schema()
"""
_counter = itertools.count(1)


def _seeded_role_scopes() -> dict[str, list[str]]:
    """What the built-in roles hold after the migrations (the revision that seeds them)."""
    path = Path(migrate.__file__).parent / "migrations/versions/0002_roles_scopes_resource_servers.py"
    spec = importlib.util.spec_from_file_location("seed_revision", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seeded: dict[str, list[str]] = module.BUILTIN_ROLE_SCOPES
    return seeded


_SEEDED_ROLE_SCOPES = _seeded_role_scopes()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; every test copies the migrated file."""
    path = tmp_path_factory.mktemp("template") / "bastion.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _admin_statement(statement: str) -> None:
    assert POSTGRES_URL
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    """A database of this test run's own, created beside the configured one and dropped after."""
    if not POSTGRES_URL:
        pytest.skip(SKIP_POSTGRES)
    name = f"bastion_test_{os.getpid()}"
    asyncio.run(_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin_statement(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _backends() -> list[Any]:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _deletion_order(references: list[tuple[str, str]]) -> list[str]:
    """``_PG_TABLES`` and the tables that reference them, directly or not, each after every
    table that references it (children first, so no foreign key ever blocks a DELETE)."""
    tables = set(_PG_TABLES)
    while extra := {child for child, parent in references if parent in tables} - tables:
        tables |= extra
    order: list[str] = []
    while tables:
        leaves = sorted(
            table for table in tables
            if not any(p == table and c in tables and c != p for c, p in references)
        )
        assert leaves, f"a cycle of foreign keys among {sorted(tables)}"
        order += leaves
        tables -= set(leaves)
    return order


async def _truncate_postgres(url: str) -> None:
    """Empty the test database as TRUNCATE ... CASCADE of ``_PG_TABLES`` would, with DELETE:
    on tables this small TRUNCATE costs far more (new files for every table and index, and
    an exclusive lock that waits for any connection still open on them)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            references = [(c, p) for c, p in await connection.execute(text(_PG_FOREIGN_KEYS))]
            for table in _deletion_order(references):
                await connection.execute(text(f'DELETE FROM "{table}"'))
            # Roles and scopes back to what the migrations seed.
            await connection.execute(text("DELETE FROM role_scopes"))
            await connection.execute(text("DELETE FROM roles WHERE NOT builtin"))
            await connection.execute(text("DELETE FROM scopes WHERE NOT builtin"))
            await connection.execute(
                text("INSERT INTO role_scopes (role_name, scope_name) VALUES (:role, :scope)"),
                [
                    {"role": role, "scope": scope}
                    for role, scopes in _SEEDED_ROLE_SCOPES.items()
                    for scope in scopes
                ],
            )
    finally:
        await engine.dispose()


@pytest.fixture
def migrated(backend: str, request: pytest.FixtureRequest) -> Path | str:
    """The migrated SQLite template file, or the migrated PostgreSQL URL."""
    name = "sqlite_template" if backend == "sqlite" else "postgres_migrated"
    value: Path | str = request.getfixturevalue(name)
    return value


@pytest.fixture
async def database_url(migrated: Path | str, tmp_path: Path) -> AsyncIterator[str]:
    if isinstance(migrated, Path):
        path = tmp_path / "bastion.db"
        shutil.copyfile(migrated, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = migrated
    await _truncate_postgres(url)  # before each test: whatever the last one left goes
    yield url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrization) to change settings."""
    return {}


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "_env_file": None}
    values.update(settings_overrides)
    return Settings(**values)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    built = await build_runtime(settings)
    yield built
    await built.close()


_apps: dict[str, FastAPI] = {}


def _app_for(runtime: Runtime) -> FastAPI:
    """``create_app(runtime=runtime)``, made once for each distinct set of settings (the
    database URL aside) and handed the test's runtime. Routes and middleware depend on the
    settings alone and reach the runtime through ``app.state``; a new FastAPI app compiles
    every route's matcher at its first request, a few tenths of a second per test."""
    settings = runtime.settings
    values = [
        (name, value.get_secret_value() if isinstance(value, SecretStr) else value)
        for name in sorted(type(settings).model_fields)
        if name != "database_url"
        for value in [getattr(settings, name)]
    ]
    key = repr(values)
    app = _apps.get(key)
    if app is None:
        app = _apps[key] = create_app(runtime=runtime)
    app.state.runtime = runtime
    return app


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = _app_for(runtime)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    scope: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    """Drives the app the way a client would; creates privileged accounts via the service."""

    def __init__(self, client: httpx.AsyncClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    @staticmethod
    def unique(prefix: str = "user") -> str:
        return f"{prefix}{next(_counter)}_{os.getpid()}"

    async def register(self, username: str | None = None, **body: Any) -> httpx.Response:
        username = username or self.unique()
        payload = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        payload.update(body)
        return await self.client.post("/auth/register", json=payload)

    async def login(
        self, username: str, password: str = PASSWORD, **form: str
    ) -> httpx.Response:
        data = {"username": username, "password": password, **form}
        return await self.client.post("/auth/token", data=data)

    async def refresh(self, refresh_token: str, **form: str) -> httpx.Response:
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
        return await self.client.post("/auth/token", data=data)

    async def account(self, *roles: str, scope: str | None = None) -> Account:
        """A new account with ``roles`` (default: user), logged in."""
        username = self.unique(roles[0] if roles else "user")
        async with transaction(self.runtime.sessionmaker) as db:
            user = await users.create_user(
                db,
                passwords=self.runtime.passwords,
                username=username,
                email=f"{username}@example.com",
                password=PASSWORD,
                roles=roles or ("user",),
            )
            user_id = user.id
        account = Account(
            id=user_id, username=username, email=f"{username}@example.com", password=PASSWORD
        )
        await self.relogin(account, scope=scope)
        return account

    async def relogin(self, account: Account, scope: str | None = None) -> Account:
        form = {"scope": scope} if scope is not None else {}
        response = await self.login(account.username, account.password, **form)
        assert response.status_code == 200, response.text
        body = response.json()
        account.access_token = body["access_token"]
        account.refresh_token = body["refresh_token"]
        account.scope = body["scope"]
        return account

    async def api_key(self, account: Account, scopes: list[str]) -> str:
        response = await self.client.post(
            "/users/me/api-keys",
            json={"name": "test key", "scopes": scopes},
            headers=account.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["key"])


@pytest.fixture
def api(client: httpx.AsyncClient, runtime: Runtime) -> Api:
    return Api(client, runtime)


@pytest.fixture
def redis_url() -> Iterator[str]:
    if not REDIS_URL:
        pytest.skip(SKIP_REDIS)
    yield REDIS_URL
