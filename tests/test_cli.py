"""The ``bastion`` command: one-line errors, the database it names and checks, confirmations."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.db import migrate
from servers import running_server


def run(*args: str, stdin: str | None = None, **env: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def _migrated(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"
    migrate.upgrade(url)
    return url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BASTION_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"),
        ("BASTION_DATABASE_URL", "sqlite:///bastion.db"),
        ("BASTION_SECRET_KEY", "hunter2-is-my-secret"),
        ("BASTION_ACCESS_TOKEN_TTL", "soon"),
        ("BASTION_TRUSTED_PROXIES", "not-a-network"),
    ],
)
@pytest.mark.parametrize("command", [("keys", "list"), ("roles", "list"), ("db", "upgrade")])
def test_a_bad_setting_is_one_line_naming_the_variable(
    variable: str, value: str, command: tuple[str, ...]
) -> None:
    result = run(*command, **{variable: value})
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {variable}: "), result.output
    assert "Traceback" not in result.output
    if variable == "BASTION_SECRET_KEY":
        assert value not in result.output


@pytest.mark.parametrize("command", [("keys", "list"), ("scopes", "list"), ("keys", "rotate")])
def test_a_missing_database_is_refused_not_created(tmp_path: Path, command: tuple[str, ...]) -> None:
    path = tmp_path / "elsewhere.db"
    result = run(*command, BASTION_DATABASE_URL=f"sqlite+aiosqlite:///{path}")
    assert result.exit_code == 2
    assert f"database: sqlite+aiosqlite:///{path}" in result.output
    assert "no database at" in result.output and "bastion db upgrade" in result.output
    assert not path.exists()


def test_an_unmigrated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    result = run("keys", "list", BASTION_DATABASE_URL=f"sqlite+aiosqlite:///{path}")
    assert result.exit_code == 2
    assert "revision none" in result.output and "bastion db upgrade" in result.output


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = run("keys", "list", BASTION_DATABASE_URL="postgresql+asyncpg://nobody:pw@127.0.0.1:1/x")
    assert result.exit_code == 2
    assert "database: postgresql+asyncpg://nobody:***@127.0.0.1:1/x" in result.output
    assert "cannot open the database" in result.output and "pw@" not in result.output


def test_commands_name_the_database_they_use(tmp_path: Path) -> None:
    url = _migrated(tmp_path)
    result = run("keys", "rotate", BASTION_DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    assert f"database: {url}" in result.output


def test_downgrade_asks_first(tmp_path: Path) -> None:
    url = _migrated(tmp_path)
    refused = run("db", "downgrade", "base", stdin="n\n", BASTION_DATABASE_URL=url)
    assert refused.exit_code == 1
    assert "Revert the database to base?" in refused.output
    assert run("roles", "list", BASTION_DATABASE_URL=url).exit_code == 0  # still migrated
    done = run("db", "downgrade", "base", "--yes", BASTION_DATABASE_URL=url)
    assert done.exit_code == 0, done.output
    assert run("roles", "list", BASTION_DATABASE_URL=url).exit_code == 2


def test_keys_list_before_any_key_says_so(tmp_path: Path) -> None:
    result = run("keys", "list", BASTION_DATABASE_URL=_migrated(tmp_path))
    assert result.exit_code == 2
    assert "no signing key yet" in result.output and "Traceback" not in result.output


@pytest.mark.slow
def test_the_issuer_defaults_to_the_served_address(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        config = httpx.get(f"{server.base}/.well-known/openid-configuration").json()
    assert config["issuer"] == server.base
    assert config["token_endpoint"] == f"{server.base}/auth/token"
