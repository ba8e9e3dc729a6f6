"""Discovery and the key cache: forged-kid storms, throttled refetches, rotation, withdrawal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from bastion_resource import BastionResource
from bastion_resource.keys import KeyStore, parse_jwks
from bastion_resource.transport import BastionClient
from tests.kit_app import orders_app
from tests.kit_support import ISSUER, FakeBastion, SigningKey


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def protected(auth: BastionResource) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=orders_app(auth))
    return httpx.AsyncClient(transport=transport, base_url="http://orders.test")


async def test_a_storm_of_forged_kids_shares_one_fetch(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    auth = make_auth()
    bastion.delay = 0.05  # the misses arrive while the one fetch is in flight
    forged = [SigningKey(f"forged-{n}").sign() for n in range(50)]
    async with protected(auth) as http:
        storm = [http.get("/orders", headers=bearer(token)) for token in [key.sign(), *forged]]
        genuine, *refused = await asyncio.gather(*storm)
        assert genuine.status_code == 200
        assert {response.status_code for response in refused} == {401}
        assert bastion.fetches() == 1
        again = await asyncio.gather(*(http.get("/orders", headers=bearer(t)) for t in forged))
        assert {response.status_code for response in again} == {401}
        assert bastion.fetches() == 1  # within the interval: no fetch at all
    await auth.aclose()


async def test_unknown_kids_refetch_at_most_once_per_interval(
    key: SigningKey, bastion: FakeBastion
) -> None:
    now = [0.0]
    http = httpx.AsyncClient(transport=httpx.MockTransport(bastion.handle))
    store = KeyStore(
        issuer=ISSUER,
        client=BastionClient(timeout=1, client=http),
        min_interval=30,
        max_age=None,
        clock=lambda: now[0],
    )
    assert await store.resolve(key.kid) is not None
    for at, fetches in ((10.0, 1), (29.9, 1), (30.0, 2), (31.0, 2), (59.9, 2), (60.0, 3)):
        now[0] = at
        misses = await asyncio.gather(*(store.resolve(f"forged-{n}") for n in range(20)))
        assert misses == [None] * 20
        assert bastion.fetches() == fetches, at
    await http.aclose()


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
        await until(lambda: bastion.fetches() == 2)
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
        await until(lambda: bastion.fetches() == 2)  # tried, failed, and the old keys serve on
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
