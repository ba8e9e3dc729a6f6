"""Bastion inside someone else's app: the README's snippet, mounting, the demo switch, the CLI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from bastion.app import create_app
from bastion.cli import app as cli
from bastion.config import Settings
from bastion.db import migrate
from conftest import PASSWORD

README = Path(__file__).parent.parent / "README.md"
SNIPPET = re.compile(r"<!-- embedding-snippet[^>]*-->\n```python\n(.*?)```", re.DOTALL)


def readme_snippet() -> str:
    match = SNIPPET.search(README.read_text())
    assert match, "the README's embedding snippet is missing"
    return match.group(1)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, as a server would run it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    registered = await client.post(
        "/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert registered.status_code == 201, registered.text
    response = await client.post("/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_the_readme_snippet_protects_a_route_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh database: the lifespan migrates it inside the running event loop."""
    monkeypatch.setenv("BASTION_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    namespace: dict[str, Any] = {}
    exec(compile(readme_snippet(), str(README), "exec"), namespace)  # noqa: S102
    app: FastAPI = namespace["app"]
    async with serving(app) as client:
        assert (await client.get("/orders")).status_code == 401
        headers = await _login(client, "embedded")
        response = await client.get("/orders", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"owner": "embedded"}
        narrow = await client.post(
            "/auth/token", data={"username": "embedded", "password": PASSWORD, "scope": "me"}
        )
        denied = await client.get(
            "/orders", headers={"Authorization": f"Bearer {narrow.json()['access_token']}"}
        )
        assert denied.status_code == 403
        assert 'scope="orders:read"' in denied.headers["www-authenticate"]
        assert (await client.get("/users/me", headers=headers)).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "/orders" in schema["paths"] and "/auth/token" in schema["paths"]
        flows = schema["components"]["securitySchemes"]["OAuth2"]["flows"]
        assert flows["password"]["scopes"]["orders:read"] == "Read orders"


async def test_install_keeps_the_apps_own_lifespan(tmp_path: Path) -> None:
    from bastion import Bastion

    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("start")
        yield {"greeting": "hello"}
        events.append("stop")

    app = FastAPI(lifespan=own)
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", _env_file=None)  # type: ignore[call-arg]
    Bastion(settings).install(app, prefix="/identity")
    async with serving(app) as client:
        assert events == ["start"]
        assert (await client.get("/identity/healthz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 404
    assert events == ["start", "stop"]


async def test_mounting_is_refused_with_a_clear_error(settings: Settings) -> None:
    parent = FastAPI()
    parent.mount("/identity", create_app(settings))
    transport = httpx.ASGITransport(app=parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/identity/users/me")
    assert response.status_code == 503
    assert "app.mount()" in response.json()["detail"]
    assert "install(app)" in response.json()["detail"]


@pytest.mark.parametrize("settings_overrides", [{"demo_todos": False}])
async def test_the_demo_can_be_turned_off(client: httpx.AsyncClient) -> None:
    headers = await _login(client, "nodemo")
    assert (await client.get("/todos", headers=headers)).status_code == 404
    config = (await client.get("/.well-known/openid-configuration")).json()
    assert not any(scope.startswith("todos:") for scope in config["scopes_supported"])
    token = await client.post("/auth/token", data={"username": "nodemo", "password": PASSWORD})
    assert token.json()["scope"] == "me"


def _cli(database_url: str, *args: str, stdin: str | None = None) -> Any:
    env = {"BASTION_DATABASE_URL": database_url}
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def test_the_cli_manages_roles_and_scopes(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrate.upgrade(url)
    assert _cli(url, "scopes", "add", "orders:read", "--description", "Read orders").exit_code == 0
    assert _cli(url, "roles", "add", "clerk", "--description", "Clerks", "--scope", "me").exit_code == 0
    assert _cli(url, "roles", "grant", "clerk", "orders:read").exit_code == 0
    listed = _cli(url, "roles", "list")
    assert re.search(r"clerk\t\tme orders:read", listed.output), listed.output
    server = _cli(
        url, "resource-servers", "add", "https://orders.example", "--name", "Orders",
        "--scope", "orders:read",
    )
    assert server.exit_code == 0, server.output
    assert "https://orders.example" in _cli(url, "resource-servers", "list").output
    assert _cli(url, "roles", "revoke", "clerk", "orders:read").exit_code == 0
    assert "orders:read" not in _cli(url, "roles", "list").output.split("clerk")[1].split("\n")[0]
    created = _cli(
        url, "users", "create", "clerk1", "--email", "c@example.com", "--role", "clerk",
        "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output


@pytest.mark.parametrize(
    "args",
    [
        ("roles", "grant", "user", "no:such"),
        ("roles", "grant", "no-such-role", "me"),
        ("roles", "add", "clerk", "--description", "x", "--scope", "no:such"),
        ("resource-servers", "add", "not a uri", "--name", "x"),
        ("scopes", "add", "bad scope", "--description", "x"),
        ("scopes", "add", "me", "--description", "again"),
    ],
)
def test_the_cli_refuses_unknown_names_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrate.upgrade(url)
    result = _cli(url, *args)
    assert result.exit_code == 1
    database, error = result.output.splitlines()
    assert database.startswith("database: ") and error.startswith("error: "), result.output


def test_users_create_with_an_unknown_role_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrate.upgrade(url)
    result = _cli(
        url, "users", "create", "xuser1", "--email", "x1@example.com", "--role", "no-such-role",
        "--password-stdin", stdin=PASSWORD + "\n",
    )
    assert result.exit_code == 1
    assert "unknown role(s): no-such-role" in result.output
