"""Discovery and the key cache: forged-kid storms, throttled refetches, rotation, withdrawal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from bastion_resource import BastionResource
from bastion_resource.keys import parse_jwks
from tests.kit_app import orders_app
from tests.kit_support import FakeBastion, SigningKey


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def protected(auth: BastionResource) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=orders_app(auth))
    return httpx.AsyncClient(transport=transport, base_url="http://orders.test")


async def test_a_storm_of_forged_kids_costs_one_fetch_per_interval(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth(key_refetch_interval=0.5)
    bastion.delay = 0.05  # concurrent misses arrive while the one fetch is in flight
    async with protected(auth) as http:
        assert (await http.get("/orders", headers=bearer(key.sign()))).status_code == 200
        assert bastion.fetches() == 1
        await asyncio.sleep(0.6)
        forged = [SigningKey(f"forged-{n}").sign() for n in range(50)]
        responses = await asyncio.gather(*(http.get("/orders", headers=bearer(t)) for t in forged))
        assert {r.status_code for r in responses} == {401}
        assert bastion.fetches() == 2
        again = await asyncio.gather(*(http.get("/orders", headers=bearer(t)) for t in forged))
        assert {r.status_code for r in again} == {401}
        assert bastion.fetches() == 2  # within the interval: no fetch at all
        await asyncio.sleep(0.6)
        assert (await http.get("/orders", headers=bearer(forged[0]))).status_code == 401
        assert bastion.fetches() == 3
    await auth.aclose()


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth(key_refetch_interval=0.2)
    old_token = key.sign()
    async with protected(auth) as http:
        assert (await http.get("/orders", headers=bearer(old_token))).status_code == 200
        rotated = SigningKey("key-2")
        bastion.keys = [key, rotated]
        await asyncio.sleep(0.25)
        assert (await http.get("/orders", headers=bearer(rotated.sign()))).status_code == 200
        assert (await http.get("/orders", headers=bearer(old_token))).status_code == 200
    await auth.aclose()


async def test_a_withdrawn_key_stops_verifying_even_cached_tokens(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth(key_max_age=0.1, key_refetch_interval=0.05)
    token = key.sign()
    async with protected(auth) as http:
        assert (await http.get("/orders", headers=bearer(token))).status_code == 200
        bastion.keys = [SigningKey("key-2")]
        await asyncio.sleep(0.15)
        await http.get("/orders", headers=bearer(token))  # old keys serve; a refresh starts
        await asyncio.sleep(0.05)
        response = await http.get("/orders", headers=bearer(token))
        assert response.status_code == 401
        assert "signing key withdrawn" in response.headers["www-authenticate"]
    await auth.aclose()


async def test_old_keys_are_refreshed_in_the_background(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth(key_max_age=0.1, key_refetch_interval=0.05)
    async with protected(auth) as http:
        await http.get("/orders", headers=bearer(key.sign()))
        await asyncio.sleep(0.15)
        bastion.down = True
        assert (await http.get("/orders", headers=bearer(key.sign()))).status_code == 200
        await asyncio.sleep(0.05)
        assert bastion.fetches() == 2  # tried, failed, and the old keys kept serving
        assert (await http.get("/orders", headers=bearer(key.sign()))).status_code == 200
    await auth.aclose()


async def test_discovery_naming_another_issuer_is_not_trusted(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    bastion.issuer = "https://evil.example"
    auth = make_auth()
    async with protected(auth) as http:
        response = await http.get("/orders", headers=bearer(key.sign()))
    assert response.status_code == 503
    assert bastion.fetches() == 0
    await auth.aclose()


def _jwk(key: SigningKey, **changes: Any) -> dict[str, Any]:
    jwk = {**key.jwk(), **changes}
    return {name: value for name, value in jwk.items() if value is not None}


def test_only_public_asymmetric_signing_keys_with_their_alg_are_used(key: SigningKey) -> None:
    good = SigningKey("good")
    document = {
        "keys": [
            good.jwk(),
            _jwk(key, kid="no-alg", alg=None),
            _jwk(key, kid="hmac", kty="oct", alg="HS256", k="c2VjcmV0"),
            _jwk(key, kid="alg-none", alg="none"),
            _jwk(key, kid="wrong-type", alg="RS256"),
            _jwk(key, kid="encryption", use="enc"),
            _jwk(key, kid="private", d="AAAA"),
            _jwk(key, kid=None),
            _jwk(key, kid="broken", x="not base64!"),
            "not an object",
        ]
    }
    assert list(parse_jwks(document)) == ["good"]
