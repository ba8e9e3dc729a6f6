"""A route guarded by the kit: the principal, RFC 6750 challenges, OpenAPI, an unreachable Bastion."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from bastion_resource import BastionResource
from tests.kit_app import orders_app
from tests.kit_support import AUDIENCE, ISSUER, FakeBastion, SigningKey


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_valid_token_with_the_scope_gets_its_principal(
    client: httpx.AsyncClient, key: SigningKey, auth: BastionResource
) -> None:
    token = key.sign()
    response = await client.get("/orders", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"subject": "user-1", "scopes": ["orders:read", "orders:write"]}
    principal = await auth.verify(token)
    assert (principal.username, principal.session_id, principal.client_id) == (
        "alice",
        "session-1",
        None,
    )
    assert principal.audience == AUDIENCE
    assert principal.claims["iss"] == ISSUER


async def test_no_credentials_get_the_bare_bearer_challenge(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer "}):
        response = await client.get("/orders", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "not authenticated"}


async def test_a_missing_scope_is_403_naming_it(client: httpx.AsyncClient, key: SigningKey) -> None:
    response = await client.get("/orders", headers=bearer(key.sign(scope="orders:write")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders:read"'
    )
    assert response.json() == {"detail": "this credential lacks the scope orders:read"}


async def test_an_expired_token_says_so_on_every_use(
    client: httpx.AsyncClient, key: SigningKey
) -> None:
    token = key.sign(exp=int(time.time()) - 60, iat=int(time.time()) - 960)
    for _ in range(2):
        response = await client.get("/orders", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == (
            'Bearer error="invalid_token", error_description="token expired"'
        )
        assert response.json() == {"detail": "token expired"}


async def test_cached_keys_keep_serving_while_bastion_is_down(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    seen, unseen = key.sign(), key.sign(jti="another")
    assert (await client.get("/orders", headers=bearer(seen))).status_code == 200
    bastion.down = True
    for token in (seen, unseen):
        assert (await client.get("/orders", headers=bearer(token))).status_code == 200
    forged = SigningKey("key-unknown").sign()
    response = await client.get("/orders", headers=bearer(forged))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_no_keys_yet_and_bastion_down_is_503_not_a_guess(
    client: httpx.AsyncClient, key: SigningKey, bastion: FakeBastion
) -> None:
    bastion.down = True
    response = await client.get("/orders", headers=bearer(key.sign()))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == {"detail": "Bastion's signing keys are not available"}


async def test_a_hanging_bastion_is_cut_off_by_the_timeout(
    make_auth: Callable[..., BastionResource], key: SigningKey, bastion: FakeBastion
) -> None:
    bastion.delay = 30
    auth = make_auth(timeout=0.2)
    transport = httpx.ASGITransport(app=orders_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as http:
        started = time.monotonic()
        response = await http.get("/orders", headers=bearer(key.sign()))
    assert response.status_code == 503
    assert time.monotonic() - started < 2


async def test_openapi_points_swagger_at_bastion(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["Bastion"]
    flow = scheme["flows"]["password"]
    assert flow["tokenUrl"] == f"{ISSUER}/auth/token?resource=https%3A%2F%2Forders.example"
    assert {"orders:read", "orders:write"} <= set(flow["scopes"])
    assert schema["paths"]["/orders"]["get"]["security"] == [{"Bastion": ["orders:read"]}]
    assert schema["paths"]["/orders"]["post"]["security"] == [{"Bastion": ["orders:write"]}]


async def test_the_lifespan_fetches_keys_and_closes(
    make_auth: Callable[..., BastionResource], bastion: FakeBastion
) -> None:
    auth = make_auth()
    async with auth.lifespan():
        assert auth.keys.loaded
    assert bastion.fetches() == 1


async def test_the_lifespan_starts_even_when_bastion_is_down(
    make_auth: Callable[..., BastionResource], bastion: FakeBastion
) -> None:
    bastion.down = True
    auth = make_auth()
    async with auth.lifespan():
        assert not auth.keys.loaded


def test_configuration_is_checked_up_front() -> None:
    for bad in ({"issuer": "bastion.test"}, {"audience": ""}, {"timeout": 0}):
        options = {"issuer": ISSUER, "audience": AUDIENCE, **bad}
        try:
            BastionResource(**options)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_secrets_stay_out_of_repr() -> None:
    auth = BastionResource(issuer=ISSUER, audience=AUDIENCE, client_id="c", client_secret="s3cr3t")
    assert "s3cr3t" not in repr(auth)
    assert "s3cr3t" not in repr(auth.introspector.__dict__)
