"""``bastion clients add|list|rotate-secret|delete`` against the database a running app uses."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.errors import InvalidClient
from bastion.runtime import Runtime


async def run(runtime: Runtime, *args: str) -> Any:
    env = {"BASTION_DATABASE_URL": runtime.settings.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["clients", *args], env=env)
    return result


def _value(output: str, name: str) -> str:
    found = re.search(rf"^{name}: (\S+)$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


async def test_clients_from_the_command_line(runtime: Runtime) -> None:
    added = await run(runtime, "add", "Reports job", "--type", "confidential",
                      "--grant", "client_credentials", "--scope", "me")
    assert added.exit_code == 0, added.output
    client_id, secret = _value(added.stdout, "client_id"), _value(added.stdout, "client_secret")
    assert (await runtime.clients.authenticate(client_id, secret)).id == client_id
    listed = await run(runtime, "list")
    assert client_id in listed.stdout and "bastion-docs" in listed.stdout
    rotated = await run(runtime, "rotate-secret", client_id, "--grace", "0")
    assert rotated.exit_code == 0, rotated.output
    runtime.clients.clear()
    new = _value(rotated.stdout, "client_secret")
    assert (await runtime.clients.authenticate(client_id, new)).id == client_id
    with pytest.raises(InvalidClient):  # no grace period: the old secret is gone at once
        await runtime.clients.authenticate(client_id, secret)
    assert (await run(runtime, "delete", client_id)).exit_code == 0
    runtime.clients.clear()
    assert await runtime.clients.get(client_id) is None


async def test_invalid_input_is_one_line(runtime: Runtime) -> None:
    bad = await run(runtime, "add", "x", "--type", "public", "--redirect-uri", "http://evil.example/cb")
    assert bad.exit_code == 1 and bad.output.count("error:") == 1
    unknown = await run(runtime, "add", "x", "--type", "confidential", "--grant",
                        "client_credentials", "--scope", "nope")
    assert unknown.exit_code == 1 and "unknown scope" in unknown.output
    assert (await run(runtime, "delete", "no-such-client")).exit_code == 1


async def test_a_public_client_with_its_uris(runtime: Runtime) -> None:
    added = await run(runtime, "add", "SPA", "--type", "public", "--first-party",
                      "--redirect-uri", "https://spa.example/cb", "--scope", "openid",
                      "--post-logout-redirect-uri", "https://spa.example/")
    assert added.exit_code == 0, added.output
    assert "client_secret" not in added.stdout
    client = await runtime.clients.get(_value(added.stdout, "client_id"))
    assert client is not None and client.first_party and not client.confidential
    assert client.redirect_uris == ("https://spa.example/cb",)
    assert client.post_logout_redirect_uris == ("https://spa.example/",)
