"""What Swagger UI shows a newcomer: examples that work, limits that match the policy."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def _schema(client: httpx.AsyncClient) -> dict[str, Any]:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    return schema


async def test_the_register_example_works_as_given(client: httpx.AsyncClient) -> None:
    schema = await _schema(client)
    example = schema["components"]["schemas"]["RegisterIn"]["examples"][0]
    response = await client.post("/auth/register", json=example)
    assert response.status_code == 201, response.text


async def test_password_limits_in_the_schema_are_the_policy(client: httpx.AsyncClient) -> None:
    components = (await _schema(client))["components"]["schemas"]
    for model, field in (("RegisterIn", "password"), ("PasswordChange", "new_password")):
        declared = components[model]["properties"][field]
        assert (declared["minLength"], declared["maxLength"]) == (8, 256), model


async def test_declared_scopes_are_offered_in_authorize(client: httpx.AsyncClient) -> None:
    flows = (await _schema(client))["components"]["securitySchemes"]["OAuth2"]["flows"]
    assert {"me", "todos:read", "todos:write", "todos:moderate"} <= set(flows["password"]["scopes"])


async def test_metrics_are_not_in_the_schema(client: httpx.AsyncClient) -> None:
    assert "/metrics" not in (await _schema(client))["paths"]


@pytest.mark.parametrize("settings_overrides", [{}, {"basic_auth": True}], ids=["off", "on"])
async def test_basic_is_declared_only_when_it_is_on(
    client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    """Authorize offers HTTP Basic only when the server accepts it (BASIC_AUTH, off by default)."""
    schema = await _schema(client)
    on = bool(settings_overrides)
    assert ("HTTPBasic" in schema["components"]["securitySchemes"]) is on
    requirements = [
        requirement
        for operations in schema["paths"].values()
        for operation in operations.values()
        for requirement in operation.get("security", [])
    ]
    assert {"OAuth2", "APIKey"} <= {name for r in requirements for name in r}
    assert any("HTTPBasic" in r for r in requirements) is on
