"""``bastion scopes|roles|resource-servers``: the authorization model from the command line.

The same services as the admin API. A change is announced over Redis (when
``BASTION_REDIS_URL`` is set) so running servers apply it at their next
request; without Redis they see it within ``BASTION_STATE_CACHE_TTL``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.cli_support import run_work
from bastion.services import access_model
from bastion.services.auth_state import AuthState

scopes_app = typer.Typer(help="Scopes: the permissions a token can carry.", no_args_is_help=True)
roles_app = typer.Typer(help="Roles: named sets of scopes given to users.", no_args_is_help=True)
servers_app = typer.Typer(
    help="Resource servers: the APIs tokens are issued for (RFC 8707).", no_args_is_help=True
)
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="Scope (repeatable).")]
Description = Annotated[str, typer.Option(help="What it is for.")]


@scopes_app.command("add")
def scopes_add(name: str, description: Description) -> None:
    """Create a scope."""
    run_work(lambda db, state: access_model.create_scope(
        db, state, name=name, description=description, ip=None, actor_id=None
    ))
    typer.echo(f"created scope {name}")


@scopes_app.command("list")
def scopes_list() -> None:
    """List the scopes."""
    for scope in run_work(lambda db, state: access_model.list_scopes(db)):
        typer.echo(f"{scope.name}\t{'built-in' if scope.builtin else ''}\t{scope.description}")


@roles_app.command("add")
def roles_add(name: str, description: Description, scope: Scopes = None) -> None:
    """Create a role holding the given scopes."""
    run_work(lambda db, state: access_model.create_role(
        db, state, name=name, description=description, scopes=scope or [], ip=None,
        actor_id=None,
    ))
    typer.echo(f"created role {name}")


@roles_app.command("list")
def roles_list() -> None:
    """List the roles and their scopes."""
    for role in run_work(lambda db, state: access_model.list_roles(db)):
        typer.echo(f"{role.name}\t{'built-in' if role.builtin else ''}\t{' '.join(role.scopes)}")


async def _grant(db: AsyncSession, state: AuthState, role: str, scope: str) -> None:
    found = await access_model.get_role(db, role)
    await access_model.grant_scope(db, state, role=found, scope=scope, ip=None, actor_id=None)


async def _revoke(db: AsyncSession, state: AuthState, role: str, scope: str) -> None:
    found = await access_model.get_role(db, role)
    await access_model.revoke_scope(db, state, role=found, scope=scope, ip=None, actor_id=None)


@roles_app.command("grant")
def roles_grant(role: str, scope: str) -> None:
    """Give ROLE the SCOPE."""
    run_work(lambda db, state: _grant(db, state, role, scope))
    typer.echo(f"role {role} now has {scope}")


@roles_app.command("revoke")
def roles_revoke(role: str, scope: str) -> None:
    """Take the SCOPE from ROLE."""
    run_work(lambda db, state: _revoke(db, state, role, scope))
    typer.echo(f"role {role} no longer has {scope}")


@servers_app.command("add")
def servers_add(
    identifier: str,
    name: Annotated[str, typer.Option(help="Display name.")],
    scope: Scopes = None,
) -> None:
    """Register an API by its IDENTIFIER (an absolute URI: the ``aud`` of its tokens)."""
    server = run_work(lambda db, state: access_model.create_resource_server(
        db, state, identifier=identifier, name=name, scopes=scope or [], ip=None, actor_id=None
    ))
    typer.echo(f"registered resource server {identifier} ({server.id})")


@servers_app.command("list")
def servers_list() -> None:
    """List the registered resource servers."""
    for server in run_work(lambda db, state: access_model.list_resource_servers(db)):
        typer.echo(f"{server.id}\t{server.identifier}\t{' '.join(server.scopes)}")
