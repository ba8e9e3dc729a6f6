"""The ``bastion`` command: a thin shell over the same services the API uses."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Annotated

import typer
from pydantic import ValidationError

from bastion import cli_users
from bastion.api.schemas import RegisterIn
from bastion.cli_access import roles_app, scopes_app, servers_app
from bastion.cli_clients import clients_app
from bastion.cli_support import fail, load_settings, use_database
from bastion.config import Settings
from bastion.db import migrate
from bastion.db.engine import create_engine, create_sessionmaker, transaction
from bastion.db.models import utcnow
from bastion.embed import prepare_database
from bastion.errors import BastionError
from bastion.log import configure_logging
from bastion.scopes import DEFAULT_ROLE
from bastion.security.passwords import PasswordHasher
from bastion.services import signing_keys, users
from bastion.services.signing_keys import NoActiveKey

app = typer.Typer(help="Bastion: authentication and authorization for FastAPI.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
cli_users.register(users_app)  # list, disable, enable, set-password, set-role
app.add_typer(scopes_app, name="scopes")
app.add_typer(roles_app, name="roles")
app.add_typer(servers_app, name="resource-servers")
app.add_typer(clients_app, name="clients")  # add, list, rotate-secret, delete


def _settings(*, must_exist: bool = True) -> Settings:
    """The settings and a check of the database this command will use (see cli_support)."""
    settings = load_settings()
    use_database(settings, must_exist=must_exist)
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Migrate the database, create a signing key if needed, and serve the API."""
    import uvicorn

    settings = _settings(must_exist=False)
    if "issuer" not in settings.model_fields_set:
        # Tokens name the address actually served, not a default port.
        os.environ["BASTION_ISSUER"] = f"http://{host}:{port}"
        settings = load_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metric samples here; /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bastion-metrics-")
    # Migrate and make the first signing key once, before any worker starts.
    asyncio.run(prepare_database(settings))
    uvicorn.run(
        "bastion.app:create_server_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,  # Bastion reads X-Forwarded-For itself, from trusted proxies only
        server_header=False,
        access_log=False,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    migrate.upgrade(_settings(must_exist=False).database_url, revision)
    typer.echo("database is up to date")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Revert migrations down to REVISION (``base`` removes everything)."""
    settings = _settings()
    if not yes:
        typer.confirm(
            f"Revert the database to {revision}? Data in the dropped tables and columns is lost",
            abort=True,
            err=True,
        )
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"database is at {revision}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new signing key active; the old one stays published until its tokens expire."""
    settings = _settings()

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                return await signing_keys.rotate_key(
                    db,
                    algorithm=settings.jwt_algorithm,
                    publish_for=signing_keys.publish_window(
                        access_token_ttl=settings.access_token_ttl,
                        key_refresh_interval=settings.key_refresh_interval,
                    ),
                )
        finally:
            await engine.dispose()

    typer.echo(f"active signing key: {asyncio.run(run())}")


@keys_app.command("list")
def keys_list() -> None:
    """List the published signing keys."""
    settings = _settings()

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                ring = await signing_keys.load_key_ring(db, now=utcnow())
        finally:
            await engine.dispose()
        for key in ring.keys.values():
            status = "active" if key is ring.active else f"retired until {key.publish_until}"
            typer.echo(f"{key.kid}  {key.algorithm}  {status}")

    try:
        asyncio.run(run())
    except NoActiveKey:
        fail("no signing key yet: `bastion serve` or `bastion keys rotate` makes one")


@users_app.command("create")
def users_create(
    username: str,
    email: Annotated[str, typer.Option(help="Email address.")],
    role: Annotated[list[str] | None, typer.Option(help="Role (repeatable).")] = None,
    full_name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an account (an admin, say) without the API."""
    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        valid = RegisterIn(
            username=username, email=email, password=password, full_name=full_name
        )
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    hasher = PasswordHasher(
        memory_cost=settings.argon2_memory_cost,
        time_cost=settings.argon2_time_cost,
        threads=1,
    )

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                user = await users.create_user(
                    db,
                    passwords=hasher,
                    username=valid.username,
                    email=str(valid.email),
                    password=valid.password,
                    full_name=valid.full_name,
                    roles=role or [DEFAULT_ROLE],
                )
                return user.id
        finally:
            await engine.dispose()

    try:
        user_id = asyncio.run(run())
    except BastionError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        hasher.close()
    typer.echo(f"created user {username} ({user_id})")


if __name__ == "__main__":
    app()
