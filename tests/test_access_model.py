"""Roles, scopes and resource servers as data: the admin API, RFC 8707 audiences,
introspection (RFC 7662) and userinfo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import jwt
import pytest

from bastion.app import create_app
from bastion.config import Settings
from bastion.runtime import build_runtime
from conftest import Account, Api

ORDERS = "https://orders.example"


async def _post(api: Api, admin: Account, path: str, **body: object) -> httpx.Response:
    return await api.client.post(path, json=body, headers=admin.headers)


async def _orders_api(api: Api, admin: Account, *, grant_to: str = "user") -> None:
    """An ``orders`` API with two scopes; ``grant_to`` gets ``orders:read``."""
    for name in ("orders:read", "orders:write"):
        assert (await _post(api, admin, "/admin/scopes", name=name, description=name)).status_code == 201
    created = await _post(
        api, admin, "/admin/resource-servers", identifier=ORDERS, name="Orders",
        scopes=["orders:read", "orders:write"],
    )
    assert created.status_code == 201, created.text
    patched = await api.client.patch(
        f"/admin/roles/{grant_to}",
        json={"scopes": [*await _role_scopes(api, admin, grant_to), "orders:read"]},
        headers=admin.headers,
    )
    assert patched.status_code == 200, patched.text


async def _role_scopes(api: Api, admin: Account, role: str) -> list[str]:
    response = await api.client.get(f"/admin/roles/{role}", headers=admin.headers)
    assert response.status_code == 200, response.text
    scopes: list[str] = response.json()["scopes"]
    return scopes


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_builtins_are_seeded_and_listed(api: Api) -> None:
    admin = await api.account("admin")
    roles = {role["name"]: role for role in (await api.client.get("/admin/roles", headers=admin.headers)).json()}
    assert {"user", "moderator", "admin"} <= set(roles)
    assert all(roles[name]["builtin"] for name in ("user", "moderator", "admin"))
    assert roles["user"]["scopes"] == ["me", "todos:read", "todos:write"]
    assert set(roles["admin"]["scopes"]) >= {"users:write", "audit:read", "tokens:introspect"}
    scopes = {s["name"]: s for s in (await api.client.get("/admin/scopes", headers=admin.headers)).json()}
    assert scopes["me"]["builtin"] and not scopes["todos:read"]["builtin"]


async def test_custom_role_and_scope_reach_the_token_and_the_route(api: Api) -> None:
    admin = await api.account("admin")
    assert (await _post(api, admin, "/admin/scopes", name="reports:read", description="Reports")).status_code == 201
    created = await _post(
        api, admin, "/admin/roles", name="analyst", description="Reads reports",
        scopes=["me", "reports:read"],
    )
    assert created.status_code == 201, created.text
    user = await api.account()
    assert (await api.client.patch(
        f"/admin/users/{user.id}", json={"roles": ["user", "analyst"]}, headers=admin.headers
    )).status_code == 200
    await api.relogin(user)
    assert "reports:read" in user.scope.split()
    # Taking the scope from the role takes it from the live token at the next request.
    assert (await api.client.patch(
        "/admin/roles/analyst", json={"scopes": ["me"]}, headers=admin.headers
    )).status_code == 200
    key_attempt = await api.client.post(
        "/users/me/api-keys", json={"name": "k", "scopes": ["reports:read"]}, headers=user.headers
    )
    assert key_attempt.status_code == 403


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/roles", {"name": "x", "description": "x", "scopes": ["no:such"]}),
        ("/admin/roles", {"name": "Bad Name", "description": "x"}),
        ("/admin/scopes", {"name": "bad scope", "description": "x"}),
        ("/admin/resource-servers", {"identifier": "not a uri", "name": "x"}),
        ("/admin/resource-servers", {"identifier": "https://a.example", "name": "x", "scopes": ["no:such"]}),
    ],
)
async def test_unknown_or_malformed_names_are_422(api: Api, path: str, body: dict[str, object]) -> None:
    admin = await api.account("admin")
    response = await api.client.post(path, json=body, headers=admin.headers)
    assert response.status_code == 422, response.text


async def test_unknown_role_is_422_everywhere(api: Api) -> None:
    admin = await api.account("admin")
    user = await api.account()
    response = await api.client.patch(
        f"/admin/users/{user.id}", json={"roles": ["no-such-role"]}, headers=admin.headers
    )
    assert response.status_code == 422
    assert "no-such-role" in response.json()["detail"]
    assert (await api.client.patch(
        "/admin/roles/no-such-role", json={"scopes": []}, headers=admin.headers
    )).status_code == 404
    assert (await api.client.patch(
        "/admin/roles/user", json={"scopes": ["no:such"]}, headers=admin.headers
    )).status_code == 422


async def test_conflicts(api: Api) -> None:
    admin = await api.account("admin")
    for name in ("user", "moderator", "admin"):
        assert (await api.client.delete(f"/admin/roles/{name}", headers=admin.headers)).status_code == 409
    assert (await _post(api, admin, "/admin/scopes", name="me", description="again")).status_code == 409
    assert (await _post(api, admin, "/admin/roles", name="user", description="again")).status_code == 409
    # The admin role keeps users:write: nobody could give it back otherwise.
    assert (await api.client.patch(
        "/admin/roles/admin", json={"scopes": ["me"]}, headers=admin.headers
    )).status_code == 409
    await _post(api, admin, "/admin/roles", name="clerk", description="Clerks")
    user = await api.account()
    await api.client.patch(f"/admin/users/{user.id}", json={"roles": ["clerk"]}, headers=admin.headers)
    assert (await api.client.delete("/admin/roles/clerk", headers=admin.headers)).status_code == 409


async def test_only_users_write_manages_the_model(api: Api) -> None:
    moderator = await api.account("moderator")
    for method, path in (("GET", "/admin/roles"), ("POST", "/admin/scopes"), ("GET", "/admin/resource-servers")):
        response = await api.client.request(method, path, json={}, headers=moderator.headers)
        assert response.status_code == 403


async def test_resource_parameter_gives_that_audience_and_its_scopes_only(api: Api) -> None:
    admin = await api.account("admin")
    await _orders_api(api, admin)
    user = await api.account()
    response = await api.login(user.username, resource=ORDERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "orders:read"  # not me/todos, not orders:write (role lacks it)
    claims = _claims(body["access_token"])
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read"
    # A token for another API is refused by Bastion's own endpoints.
    own = await api.client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert own.status_code == 401
    # Refresh keeps the audience; asking for another is invalid_target.
    refreshed = await api.refresh(body["refresh_token"])
    assert refreshed.status_code == 200 and _claims(refreshed.json()["access_token"])["aud"] == ORDERS
    other = await api.refresh(refreshed.json()["refresh_token"], resource="https://else.example")
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    # Without ``resource``: Bastion's own audience and scopes.
    default = _claims((await api.login(user.username)).json()["access_token"])
    assert default["aud"] == api.runtime.settings.audience
    assert "orders:read" not in str(default["scope"]).split()


async def test_unknown_resource_is_invalid_target(api: Api) -> None:
    user = await api.account()
    response = await api.login(user.username, resource="https://unknown.example")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def _introspector(api: Api) -> dict[str, str]:
    admin = await api.account("admin")
    key = await api.api_key(admin, ["tokens:introspect"])
    return {"X-API-Key": key}


async def test_introspection_of_a_live_token_then_after_logout(api: Api) -> None:
    caller = await _introspector(api)
    user = await api.account()
    live = await api.client.post("/auth/introspect", data={"token": user.access_token}, headers=caller)
    assert live.status_code == 200, live.text
    body = live.json()
    assert body["active"] is True
    assert body["sub"] == user.id and body["username"] == user.username
    assert body["aud"] == api.runtime.settings.audience and body["iss"] == api.runtime.settings.issuer
    assert set(body["scope"].split()) == {"me", "todos:read", "todos:write"}
    assert {"exp", "iat", "sid"} <= set(body)
    assert live.headers["cache-control"] == "no-store"
    assert (await api.client.post("/auth/logout", headers=user.headers)).status_code == 204
    ended = await api.client.post("/auth/introspect", data={"token": user.access_token}, headers=caller)
    assert ended.json() == {"active": False}


async def test_introspection_of_a_resource_token(api: Api) -> None:
    admin = await api.account("admin")
    await _orders_api(api, admin)
    caller = {"X-API-Key": await api.api_key(admin, ["tokens:introspect"])}
    user = await api.account()
    token = (await api.login(user.username, resource=ORDERS)).json()["access_token"]
    body = (await api.client.post("/auth/introspect", data={"token": token}, headers=caller)).json()
    assert body["active"] is True and body["aud"] == ORDERS and body["scope"] == "orders:read"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "bsr_" + "x" * 40, "x" * 4000])
async def test_introspection_of_anything_else_is_inactive(api: Api, token: str) -> None:
    caller = await _introspector(api)
    response = await api.client.post("/auth/introspect", data={"token": token}, headers=caller)
    assert response.status_code == 200
    assert response.json() == {"active": False}


async def test_introspection_needs_a_caller_with_the_scope(api: Api) -> None:
    user = await api.account()
    anonymous = await api.client.post("/auth/introspect", data={"token": user.access_token})
    assert anonymous.status_code == 401
    plain = await api.client.post(
        "/auth/introspect", data={"token": user.access_token}, headers=user.headers
    )
    assert plain.status_code == 403
    assert 'scope="tokens:introspect"' in plain.headers["www-authenticate"]


async def test_introspection_without_token_is_invalid_request(api: Api) -> None:
    caller = await _introspector(api)
    response = await api.client.post("/auth/introspect", data={}, headers=caller)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_introspection_refuses_a_repeated_token(api: Api) -> None:
    """RFC 6749 3.2, as at the token endpoint: which of two tokens is introspected is not
    the parser's to choose."""
    caller = await _introspector(api)
    user = await api.account()
    form = {"Content-Type": "application/x-www-form-urlencoded", **caller}
    repeated = await api.client.post(
        "/auth/introspect", content=f"token={user.access_token}&token=garbage", headers=form
    )
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"
    single = await api.client.post(
        "/auth/introspect", content=f"token={user.access_token}", headers=form
    )
    assert single.json()["active"] is True


async def test_userinfo(api: Api) -> None:
    user = await api.account()
    response = await api.client.get("/userinfo", headers=user.headers)
    assert response.status_code == 200
    assert response.json() == {
        "sub": user.id, "preferred_username": user.username, "name": None, "email": user.email,
    }
    narrow = await api.relogin(await api.account(), scope="todos:read")
    assert (await api.client.get("/userinfo", headers=narrow.headers)).status_code == 403
    assert (await api.client.get("/userinfo")).status_code == 401


async def test_discovery_lists_the_declared_scopes_and_endpoints(api: Api) -> None:
    admin = await api.account("admin")
    await _post(api, admin, "/admin/scopes", name="orders:read", description="Read orders")
    config = (await api.client.get("/.well-known/openid-configuration")).json()
    assert {"orders:read", "todos:read", "me"} <= set(config["scopes_supported"])
    assert config["introspection_endpoint"].endswith("/auth/introspect")
    assert config["userinfo_endpoint"].endswith("/userinfo")


@pytest.fixture
def two_processes_settings(settings: Settings) -> Callable[..., Settings]:
    def make(**values: object) -> Settings:
        return Settings(database_url=settings.database_url, _env_file=None, **values)  # type: ignore[call-arg, arg-type]

    return make


async def _eventually(check: Callable[[], Awaitable[bool]], within: float) -> float | None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < within:
        if await check():
            return loop.time() - start
        await asyncio.sleep(0.02)
    return None


@asynccontextmanager
async def _instance(shared: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another app process on the same database (and Redis, when ``shared`` names one)."""
    runtime = await build_runtime(shared)
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://instance") as client:
            yield client
    finally:
        await runtime.close()


async def _role_change_seen_by_another_instance(
    api: Api, shared: Settings, within: float
) -> float | None:
    """Seconds until a role change made on one instance shows in a login on another."""
    admin = await api.account("admin")
    await _post(api, admin, "/admin/scopes", name="reports:read", description="Reports")
    user = await api.account()
    async with _instance(shared) as writer, _instance(shared) as reader:
        async def granted() -> bool:
            response = await reader.post(
                "/auth/token", data={"username": user.username, "password": user.password}
            )
            return "reports:read" in response.json()["scope"].split()

        assert not await granted()
        changed = await writer.patch(
            "/admin/roles/user",
            json={"scopes": ["me", "todos:read", "todos:write", "reports:read"]},
            headers=admin.headers,
        )
        assert changed.status_code == 200, changed.text
        return await _eventually(granted, within)


async def test_role_change_reaches_another_instance_within_the_cache_ttl(
    api: Api, two_processes_settings: Callable[..., Settings]
) -> None:
    seen = await _role_change_seen_by_another_instance(
        api, two_processes_settings(state_cache_ttl=0.5), within=3
    )
    assert seen is not None


@pytest.mark.redis
async def test_role_change_reaches_another_instance_within_a_second_over_redis(
    api: Api, two_processes_settings: Callable[..., Settings], redis_url: str
) -> None:
    """A long cache TTL: only the Redis fan-out can carry the change this fast."""
    seen = await _role_change_seen_by_another_instance(
        api, two_processes_settings(state_cache_ttl=60, redis_url=redis_url), within=1
    )
    assert seen is not None


async def _cli_change_seen(api: Api, shared: Settings, within: float) -> float | None:
    """Seconds until ``bastion roles grant`` (another process) shows in a login here."""
    from typer.testing import CliRunner

    from bastion.cli import app as cli

    admin = await api.account("admin")
    await _post(api, admin, "/admin/scopes", name="reports:read", description="Reports")
    user = await api.account()
    env = {"BASTION_DATABASE_URL": shared.database_url}
    if shared.redis_url is not None:
        env["BASTION_REDIS_URL"] = shared.redis_url.get_secret_value()
    async with _instance(shared) as server:
        async def granted() -> bool:
            response = await server.post(
                "/auth/token", data={"username": user.username, "password": user.password}
            )
            return "reports:read" in response.json()["scope"].split()

        assert not await granted()
        result = await asyncio.to_thread(
            CliRunner().invoke, cli, ["roles", "grant", "user", "reports:read"], env=env
        )
        assert result.exit_code == 0, result.output
        return await _eventually(granted, within)


async def test_cli_role_change_reaches_a_running_instance_within_the_ttl(
    api: Api, two_processes_settings: Callable[..., Settings]
) -> None:
    seen = await _cli_change_seen(api, two_processes_settings(state_cache_ttl=0.5), within=3)
    assert seen is not None


@pytest.mark.redis
async def test_cli_role_change_reaches_a_running_instance_within_a_second_over_redis(
    api: Api, two_processes_settings: Callable[..., Settings], redis_url: str
) -> None:
    seen = await _cli_change_seen(
        api, two_processes_settings(state_cache_ttl=60, redis_url=redis_url), within=1
    )
    assert seen is not None


async def test_resource_in_the_token_urls_query(api: Api) -> None:
    """What a resource service's Swagger UI sends: ``/auth/token?resource=...``."""
    admin = await api.account("admin")
    await _orders_api(api, admin)
    user = await api.account()
    form = {"username": user.username, "password": user.password}
    response = await api.client.post("/auth/token", params={"resource": ORDERS}, data=form)
    assert response.status_code == 200, response.text
    assert _claims(response.json()["access_token"])["aud"] == ORDERS
    both = await api.client.post(
        "/auth/token", params={"resource": "https://else.example"}, data={**form, "resource": ORDERS}
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
