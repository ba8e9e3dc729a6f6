"""``bastion users list|disable|enable|set-password|set-role`` against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.db.engine import create_engine, create_sessionmaker
from bastion.db.models import AuditEvent, AuthSession, User
from bastion.security.passwords import PasswordHasher
from conftest import PASSWORD

NEW_PASSWORD = "copper-Meadow-57-quiver"


@pytest.fixture
def bastion(database_url: str) -> Any:
    def run(*args: str, stdin: str | None = None) -> Any:
        env = {"BASTION_DATABASE_URL": database_url}
        return CliRunner().invoke(cli, list(args), env=env, input=stdin)

    result = run("users", "create", "ada", "--email", "Ada@example.com", "--password-stdin",
                 stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    return run


def _account(database_url: str) -> tuple[User, list[str], int]:
    """The account, its audit events, its live sessions."""

    async def read() -> tuple[User, list[str], int]:
        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                user = await db.scalar(select(User).where(User.username == "ada"))
                assert user is not None
                events = list(
                    await db.scalars(select(AuditEvent.event).where(AuditEvent.user_id == user.id))
                )
                live = list(
                    await db.scalars(
                        select(AuthSession.id).where(
                            AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None)
                        )
                    )
                )
                return user, events, len(live)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_list_shows_accounts_and_their_state(bastion: Any) -> None:
    result = bastion("users", "list")
    assert result.exit_code == 0, result.output
    (line,) = [row for row in result.output.splitlines() if "\tada\t" in row]
    assert line.split("\t")[1:] == ["ada", "Ada@example.com", "user", "active", "unverified"]
    assert "\tada\t" not in bastion("users", "list", "--query", "nobody").output


@pytest.mark.parametrize("name", ["ada", "ADA@example.com"])
def test_disable_and_enable(bastion: Any, database_url: str, name: str) -> None:
    assert bastion("users", "disable", name).exit_code == 0
    user, events, _ = _account(database_url)
    assert not user.is_active and "user_disabled" in events
    assert bastion("users", "enable", user.id).exit_code == 0
    assert _account(database_url)[0].is_active


def test_set_role_gives_exactly_those_roles(bastion: Any, database_url: str) -> None:
    result = bastion("users", "set-role", "ada", "moderator", "admin")
    assert result.exit_code == 0, result.output
    user, events, _ = _account(database_url)
    assert user.roles == ["admin", "moderator"] and "role_changed" in events
    unknown = bastion("users", "set-role", "ada", "emperor")
    assert unknown.exit_code == 1 and "unknown role" in unknown.output


def test_set_password_checks_policy_hashes_and_audits(bastion: Any, database_url: str) -> None:
    weak = bastion("users", "set-password", "ada", "--password-stdin", stdin="password\n")
    assert weak.exit_code == 2 and "error:" in weak.output
    result = bastion("users", "set-password", "ada", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output
    user, events, sessions = _account(database_url)
    assert "password_changed" in events and sessions == 0
    hasher = PasswordHasher(memory_cost=19_456, time_cost=2, threads=1)
    try:
        assert asyncio.run(hasher.verify(NEW_PASSWORD, user.hashed_password)).valid
    finally:
        hasher.close()


def test_an_unknown_account_is_one_line(bastion: Any) -> None:
    result = bastion("users", "disable", "nobody")
    assert result.exit_code == 1 and "error: no account 'nobody'" in result.output
    assert "Traceback" not in result.output


def test_verify_email_vouches_for_the_address(bastion: Any, database_url: str) -> None:
    assert bastion("users", "verify-email", "ada").exit_code == 0
    user, events, _ = _account(database_url)
    assert user.email_verified and "email_verified" in events
    (line,) = [row for row in bastion("users", "list").output.splitlines() if "\tada\t" in row]
    assert line.endswith("\tverified")
