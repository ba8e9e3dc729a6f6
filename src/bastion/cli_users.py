"""``bastion users list|disable|enable|set-password|set-role|verify-email``: accounts by CLI.

The same services as the admin API, in one transaction per command (see
``bastion.cli_access``); an account is named by its id, username or email.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.cli_support import fail, load_settings
from bastion.cli_support import run_work as in_transaction
from bastion.db.models import User
from bastion.errors import BastionError, NotFound
from bastion.security.passwords import PasswordHasher
from bastion.services import email_verification, password_reset, users
from bastion.services.auth_state import AuthState

ACTOR = "cli"  # the audit trail's "by" for changes made here
Account = Annotated[str, typer.Argument(help="The account's id, username or email.")]


async def find_account(db: AsyncSession, name: str) -> User:
    key = users.canonical(name)
    user = await db.scalar(
        select(User).where(
            or_(User.id == name, User.username_canonical == key, User.email_canonical == key)
        )
    )
    if user is None:
        raise NotFound(f"no account {name!r}")
    return user


def users_list(
    query: Annotated[str | None, typer.Option("--query", "-q", help="Part of a name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List accounts: id, username, email, roles, state."""

    async def work(db: AsyncSession, _state: object) -> tuple[list[User], int]:
        return await users.search_users(db, query=query, limit=limit, offset=offset)

    rows, total = in_transaction(work)
    for user in rows:
        state = "active" if user.is_active else "disabled"
        verified = "verified" if user.email_verified else "unverified"
        typer.echo(
            f"{user.id}\t{user.username}\t{user.email}\t{','.join(user.roles)}\t{state}\t{verified}"
        )
    typer.echo(f"{len(rows)} of {total}", err=True)


def _set_active(name: str, active: bool) -> None:
    async def work(db: AsyncSession, state: AuthState) -> None:
        user = await find_account(db, name)
        await users.set_active(db, state, user=user, active=active, ip=None, actor_id=ACTOR)

    in_transaction(work)
    typer.echo(f"{'enabled' if active else 'disabled'} {name}")


def users_disable(account: Account) -> None:
    """Disable an account: its sessions and API keys end at once."""
    _set_active(account, False)


def users_enable(account: Account) -> None:
    """Enable a disabled account again."""
    _set_active(account, True)


def users_set_role(
    account: Account,
    roles: Annotated[list[str], typer.Argument(help="Every role the account is to have.")],
) -> None:
    """Give an account exactly these roles."""

    async def work(db: AsyncSession, state: AuthState) -> None:
        user = await find_account(db, account)
        await users.set_roles(db, state, user=user, roles=roles, ip=None, actor_id=ACTOR)

    in_transaction(work)
    typer.echo(f"{account}: {' '.join(sorted(set(roles)))}")


def users_set_password(
    account: Account,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set an account's password (policy-checked); every session of the account ends."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def lookup(db: AsyncSession, _state: object) -> tuple[str, str, str]:
        user = await find_account(db, account)
        return user.id, user.username, user.email

    user_id, username, email = in_transaction(lookup)
    # Hashed between the two transactions: no write lock is held while it runs.
    settings = load_settings()
    hasher = PasswordHasher(
        memory_cost=settings.argon2_memory_cost, time_cost=settings.argon2_time_cost, threads=1
    )
    try:
        hashed = asyncio.run(
            password_reset.hash_checked(hasher, username=username, email=email, password=password)
        )
    except BastionError as exc:
        fail(exc.message)
    finally:
        hasher.close()

    async def store(db: AsyncSession, state: AuthState) -> None:
        user = await find_account(db, user_id)
        await password_reset.replace_password(
            db, state, user=user, hashed=hashed, ip=None, event="password_changed",
            actor_id=ACTOR,
        )

    in_transaction(store)
    typer.echo(f"password set for {username}; every session ended")


def users_verify_email(account: Account) -> None:
    """Mark an account's address verified (with REQUIRE_VERIFIED_EMAIL: a first admin, say)."""

    async def work(db: AsyncSession, state: AuthState) -> None:
        user = await find_account(db, account)
        email_verification.vouch(db, state, user=user, ip=None, actor_id=ACTOR)

    in_transaction(work)
    typer.echo(f"{account}: email verified")


def register(users_app: typer.Typer) -> None:
    """Add these commands to ``bastion users``."""
    users_app.command("list")(users_list)
    users_app.command("disable")(users_disable)
    users_app.command("enable")(users_enable)
    users_app.command("set-role")(users_set_role)
    users_app.command("set-password")(users_set_password)
    users_app.command("verify-email")(users_verify_email)
