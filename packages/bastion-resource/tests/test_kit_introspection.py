"""Introspected routes: live scopes, logout seen at once, a short cache, Bastion down or misconfigured."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import httpx
import pytest

from bastion_resource import BastionResource
from bastion_resource.introspection import IntrospectionCredential
from tests.kit_app import orders_app
from tests.kit_support import API_KEY, ISSUER, FakeBastion, SigningKey


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_active_token_passes_with_the_scopes_bastion_grants_now(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    response = await client.post("/orders", headers=bearer(key.sign()))
    assert response.status_code == 201
    assert bastion.seen_headers[0]["x-api-key"] == API_KEY
    bastion.live_scope = "orders:read"  # the user lost a role since the token was issued
    response = await client.post("/orders", headers=bearer(key.sign()))
    assert response.status_code == 403
    assert 'scope="orders:write"' in response.headers["www-authenticate"]


async def test_an_inactive_token_is_refused_at_once(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    token = key.sign()
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200
    bastion.inactive.add(token)  # logged out: locally it still verifies
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200
    response = await client.post("/orders", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="token is not active"'
    )


async def test_forgeries_never_reach_bastion(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    response = await client.post("/orders", headers=bearer(key.sign(aud="bastion")))
    assert response.status_code == 401
    assert bastion.introspections() == 0


async def test_answers_are_kept_for_the_cache_ttl(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth(introspection_cache_ttl=0.2)
    token = key.sign()
    transport = httpx.ASGITransport(app=orders_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as http:
        for _ in range(3):
            assert (await http.post("/orders", headers=bearer(token))).status_code == 201
        assert bastion.introspections() == 1
        bastion.inactive.add(token)
        await asyncio.sleep(0.25)
        assert (await http.post("/orders", headers=bearer(token))).status_code == 401
        assert bastion.introspections() == 2
    await auth.aclose()


async def test_bastion_down_is_503_and_not_asked_again_during_the_cooldown(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    assert (await client.get("/orders", headers=bearer(key.sign()))).status_code == 200
    bastion.down = True
    for _ in range(3):
        response = await client.post("/orders", headers=bearer(key.sign()))
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json() == {"detail": "token introspection is unavailable"}
    assert bastion.introspections() == 1


async def test_a_rejected_credential_is_503_not_a_pass(
    make_auth: Callable[..., BastionResource], key: SigningKey
) -> None:
    auth = make_auth(api_key="bst_wrong")
    transport = httpx.ASGITransport(app=orders_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as http:
        response = await http.post("/orders", headers=bearer(key.sign()))
    assert response.status_code == 503
    await auth.aclose()


def test_introspect_needs_a_credential() -> None:
    auth = BastionResource(issuer=ISSUER, audience="https://orders.example")
    auth.requires("orders:read")
    with pytest.raises(ValueError, match="api_key"):
        auth.requires("orders:write", introspect=True)


def test_a_client_authenticates_with_form_encoded_basic_credentials() -> None:
    credential = IntrospectionCredential(client_id="orders app", client_secret="a:b&c")
    scheme, _, encoded = credential.headers()["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "orders+app:a%3Ab%26c"
    with pytest.raises(ValueError, match="together"):
        IntrospectionCredential(client_id="orders")
