"""What every ``bastion`` command needs: settings and the database, or one clear line and exit 2.

A bad setting or an unusable database is reported as ``error: BASTION_X: what
is wrong`` on standard error, never as a traceback and never with the
rejected value of a secret. Commands other than ``serve`` and ``db upgrade``
refuse a database that does not exist or is not migrated, instead of
quietly creating one in whatever directory they were run from.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import NoReturn

import typer
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from sqlalchemy import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from bastion.config import Settings
from bastion.db import migrate
from bastion.db.engine import create_engine

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
