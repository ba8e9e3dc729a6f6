"""``bastion clients``: the OAuth client registry from the command line (the admin API's services).

A confidential client's secret is printed once, on standard output, and never again.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.cli_support import load_settings, run_work
from bastion.db.models import OAuthClient
from bastion.security.opaque_tokens import TokenDigester
from bastion.services import clients, instance_secrets
from bastion.services.auth_state import AuthState
from bastion.services.clients import ClientSpec

clients_app = typer.Typer(help="OAuth clients: the apps that sign users in.", no_args_is_help=True)
Uris = Annotated[list[str] | None, typer.Option("--redirect-uri", help="Redirect URI (repeatable).")]
Grants = Annotated[list[str] | None, typer.Option("--grant", help="Grant type (repeatable).")]
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="Scope (repeatable).")]


async def _digester(db: AsyncSession) -> TokenDigester:
    return TokenDigester(await instance_secrets.token_hash_key(db, load_settings().secret_key))


async def _add(db: AsyncSession, state: AuthState, spec: ClientSpec) -> tuple[OAuthClient, str | None]:
    return await clients.create_client(
        db, state, digester=await _digester(db), spec=spec, ip=None, actor_id=None
    )


async def _rotate(db: AsyncSession, state: AuthState, client_id: str, grace: int) -> str:
    return await clients.rotate_secret(
        db, state, digester=await _digester(db), client=await clients.get_client(db, client_id),
        grace_seconds=grace, ip=None, actor_id=None,
    )


async def _delete(db: AsyncSession, state: AuthState, client_id: str) -> None:
    await clients.delete_client(
        db, state, client=await clients.get_client(db, client_id), ip=None, actor_id=None
    )


@clients_app.command("add")
def clients_add(
    name: str,
    client_type: Annotated[
        Literal["public", "confidential"], typer.Option("--type", help="public or confidential.")
    ],
    redirect_uri: Uris = None,
    grant: Grants = None,
    scope: Scopes = None,
    first_party: Annotated[bool, typer.Option(help="Ask its users for no consent.")] = False,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--post-logout-redirect-uri", help="Where GET /logout may return (repeatable)."),
    ] = None,
) -> None:
    """Register a client; a confidential client's secret is printed this once."""
    spec = ClientSpec(
        name=name, type=client_type, redirect_uris=redirect_uri or [],
        grant_types=grant or ["authorization_code", "refresh_token"], scopes=scope or [],
        first_party=first_party, post_logout_redirect_uris=post_logout_redirect_uri or [],
    )
    client, secret = run_work(lambda db, state: _add(db, state, spec))
    typer.echo(f"client_id: {client.id}")
    if secret is not None:
        typer.echo(f"client_secret: {secret}")
        typer.echo("(shown once: store it now)", err=True)


@clients_app.command("list")
def clients_list() -> None:
    """List the clients."""
    for client in run_work(lambda db, state: clients.list_clients(db)):
        status = "enabled" if client.is_active else "disabled"
        typer.echo(
            f"{client.id}\t{client.type}\t{status}\t{client.grant_types}\t{client.name}"
        )


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str,
    grace: Annotated[
        int | None, typer.Option(min=0, help="Seconds the old secret keeps working.")
    ] = None,
) -> None:
    """Give a confidential client a new secret; the old one works for the grace period."""
    seconds = grace if grace is not None else load_settings().client_secret_grace
    secret = run_work(lambda db, state: _rotate(db, state, client_id, seconds))
    typer.echo(f"client_secret: {secret}")
    typer.echo(f"(shown once; the previous secret works for {seconds} s more)", err=True)


@clients_app.command("delete")
def clients_delete(client_id: str) -> None:
    """Delete a client: its codes and consents go, its own tokens stop."""
    run_work(lambda db, state: _delete(db, state, client_id))
    typer.echo(f"deleted client {client_id}")
