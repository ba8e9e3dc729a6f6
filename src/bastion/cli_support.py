"""What every ``bastion`` command needs: settings and the database, or one clear line and exit 2.

A bad setting or an unusable database is reported as ``error: BASTION_X: what
is wrong`` on standard error, never as a traceback and never with the
rejected value of a secret. Commands other than ``serve`` and ``db upgrade``
refuse a database that does not exist or is not migrated, instead of
quietly creating one in whatever directory they were run from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.config import Settings
from bastion.db import migrate
from bastion.db.engine import create_engine, create_sessionmaker, transaction
from bastion.errors import BastionError
from bastion.redis_client import create_client
from bastion.services import state_events
from bastion.services.access_catalog import CATALOG, AccessCatalog
from bastion.services.auth_state import AuthState, TtlCache
from bastion.services.clients import CLIENT

T = TypeVar("T")
USAGE_ERROR = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=USAGE_ERROR)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]) if error["loc"] else "settings"
            typer.echo(f"error: BASTION_{field.upper()}: {error['msg']}", err=True)
        raise typer.Exit(code=USAGE_ERROR) from None


def describe(database_url: str) -> str:
    """The URL with any password hidden."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def _revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


def use_database(settings: Settings, *, must_exist: bool = True) -> None:
    """Say which database this command uses; unless creating it, check it is there and current."""
    url = settings.database_url
    typer.echo(f"database: {describe(url)}", err=True)
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        fail(f"BASTION_DATABASE_URL: the directory {path.parent} does not exist")
    if not must_exist:
        return
    if path is not None and not path.exists():
        fail(
            f"BASTION_DATABASE_URL: no database at {path.resolve()}; run `bastion db upgrade` "
            "to create it, or point BASTION_DATABASE_URL at the existing one"
        )
    try:
        current = asyncio.run(_revision(url))
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        fail(f"BASTION_DATABASE_URL: cannot open the database ({type(exc).__name__})")
    head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
    if current != head:
        fail(
            f"BASTION_DATABASE_URL: the database is at revision {current or 'none'}, "
            f"not {head}; run `bastion db upgrade`"
        )


def run_work(work: Callable[[AsyncSession, AuthState], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction; announce the changes it made; errors in one line."""
    settings = load_settings()
    use_database(settings)

    async def run() -> T:
        engine = create_engine(settings.database_url)
        sessionmaker = create_sessionmaker(engine)
        state = AuthState(sessionmaker, ttl=0)
        state.register(CATALOG, AccessCatalog(sessionmaker, ttl=0))
        state.register(CLIENT, TtlCache(0))  # this process caches nothing: only announces
        changes: list[tuple[str, str]] = []
        state.listeners.append(lambda kind, key: changes.append((kind, key)))
        try:
            async with transaction(sessionmaker) as db:
                result = await work(db, state)
        finally:
            await engine.dispose()
        if changes and settings.redis_url is not None:
            client = create_client(
                settings.redis_url.get_secret_value(), timeout=settings.redis_timeout
            )
            try:
                await state_events.announce(client, changes)
            finally:
                await client.aclose()
        return result

    try:
        return asyncio.run(run())
    except BastionError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc
