"""The client registry (``/admin/clients``) and the client_credentials grant (RFC 6749 4.4)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jwt
import pytest

from conftest import Account, Api

ORDERS = "https://orders.example"


async def register_client(api: Api, admin: Account, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": "app", "type": "confidential", "scopes": ["me"]}
    payload.update(body)
    response = await api.client.post("/admin/clients", json=payload, headers=admin.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def client_token(api: Api, client_id: str, secret: str, **form: str) -> httpx.Response:
    return await api.client.post(
        "/auth/token", data={"grant_type": "client_credentials", **form},
        headers=basic(client_id, secret),
    )


async def test_register_list_patch_delete(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(
        api, admin, grant_types=["client_credentials"], scopes=["tokens:introspect"]
    )
    assert created["client_secret"].startswith("bcs_")
    listed = await api.client.get("/admin/clients", headers=admin.headers)
    assert listed.status_code == 200
    items = {item["client_id"]: item for item in listed.json()["items"]}
    assert created["client_id"] in items and "bastion-docs" in items
    assert "client_secret" not in items[created["client_id"]]
    patched = await api.client.patch(
        f"/admin/clients/{created['client_id']}", json={"name": "renamed"}, headers=admin.headers
    )
    assert patched.status_code == 200 and patched.json()["name"] == "renamed"
    gone = await api.client.delete(f"/admin/clients/{created['client_id']}", headers=admin.headers)
    assert gone.status_code == 204
    again = await api.client.get(f"/admin/clients/{created['client_id']}", headers=admin.headers)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"scopes": ["no-such-scope"]}, "unknown scope"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "fragment"),
        ({"redirect_uris": ["https://*.example/cb"]}, "wildcard"),
        ({"redirect_uris": ["http://app.example/cb"]}, "plain http off loopback"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "script scheme"),
        ({"type": "public", "grant_types": ["client_credentials"]}, "public client credentials"),
        ({"grant_types": ["authorization_code"]}, "code flow without redirect URI"),
        ({"grant_types": ["refresh_token"]}, "refresh without code"),
    ],
)
async def test_invalid_registrations_are_422(api: Api, body: dict[str, Any], reason: str) -> None:
    admin = await api.account("admin")
    payload = {"name": "bad", "type": "confidential", **body}
    response = await api.client.post("/admin/clients", json=payload, headers=admin.headers)
    assert response.status_code == 422, reason


async def test_accepted_redirect_uris(api: Api) -> None:
    admin = await api.account("admin")
    uris = ["https://app.example/cb", "http://127.0.0.1:7777/cb", "http://[::1]/cb",
            "com.example.app:/oauth2redirect"]
    created = await register_client(api, admin, type="public", redirect_uris=uris,
                                    grant_types=["authorization_code"])
    assert created["redirect_uris"] == uris and created["client_secret"] is None


async def test_only_admins_manage_clients(api: Api) -> None:
    user = await api.account()
    response = await api.client.get("/admin/clients", headers=user.headers)
    assert response.status_code == 403


async def test_client_credentials_token(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(
        api, admin, grant_types=["client_credentials"], scopes=["tokens:introspect", "users:read"]
    )
    response = await client_token(api, created["client_id"], created["client_secret"],
                                  scope="tokens:introspect")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and body["scope"] == "tokens:introspect"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == created["client_id"] and "sid" not in claims
    # The token works where no user is needed, and is refused cleanly where one is.
    user = await api.account()
    introspected = await api.client.post(
        "/auth/introspect", data={"token": user.access_token},
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    me = await api.client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 403
    # client_secret_post works too, and without scope the client gets all of its own.
    posted = await api.client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    })
    assert posted.status_code == 200 and posted.json()["scope"] == "tokens:introspect users:read"


async def test_client_credentials_refusals(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(api, admin, grant_types=["client_credentials"])
    wrong = await client_token(api, created["client_id"], "bcs_wrong")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    unknown = await client_token(api, "no-such-client", "bcs_wrong")
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    wider = await client_token(api, created["client_id"], created["client_secret"], scope="users:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    public = await register_client(
        api, admin, type="public", grant_types=["authorization_code"],
        redirect_uris=["https://app.example/cb"],
    )
    asked = await api.client.post("/auth/token", data={
        "grant_type": "client_credentials", "client_id": public["client_id"],
    })
    assert asked.status_code == 400 and asked.json()["error"] == "unauthorized_client"
    code_client = await register_client(
        api, admin, grant_types=["authorization_code"], redirect_uris=["https://app.example/cb"]
    )
    other = await client_token(api, code_client["client_id"], code_client["client_secret"])
    assert other.status_code == 400 and other.json()["error"] == "unauthorized_client"


async def test_disabling_or_deleting_a_client_stops_its_tokens(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(
        api, admin, grant_types=["client_credentials"], scopes=["tokens:introspect"]
    )
    token = (await client_token(api, created["client_id"], created["client_secret"])).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    probe = {"token": "x"}
    assert (await api.client.post("/auth/introspect", data=probe, headers=headers)).status_code == 200
    path = f"/admin/clients/{created['client_id']}"
    assert (await api.client.patch(path, json={"is_active": False}, headers=admin.headers)).status_code == 200
    assert (await api.client.post("/auth/introspect", data=probe, headers=headers)).status_code == 401
    assert (await client_token(api, created["client_id"], created["client_secret"])).status_code == 401


async def test_secret_rotation_keeps_the_old_secret_for_the_grace_period(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(api, admin, grant_types=["client_credentials"])
    rotated = await api.client.post(
        f"/admin/clients/{created['client_id']}/secret", headers=admin.headers
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    assert new != created["client_secret"]
    for secret in (created["client_secret"], new):
        assert (await client_token(api, created["client_id"], secret)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"client_secret_grace": 0}])
async def test_rotation_without_grace_ends_the_old_secret(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(api, admin, grant_types=["client_credentials"])
    rotated = await api.client.post(
        f"/admin/clients/{created['client_id']}/secret", headers=admin.headers
    )
    old = await client_token(api, created["client_id"], created["client_secret"])
    assert old.status_code == 401
    assert (await client_token(api, created["client_id"], rotated.json()["client_secret"])).status_code == 200


async def test_introspection_by_a_confidential_client_with_basic(api: Api) -> None:
    admin = await api.account("admin")
    created = await register_client(api, admin, grant_types=["client_credentials"])
    user = await api.account()
    response = await api.client.post(
        "/auth/introspect", data={"token": user.access_token},
        headers=basic(created["client_id"], created["client_secret"]),
    )
    assert response.status_code == 200 and response.json()["active"] is True
    wrong = await api.client.post(
        "/auth/introspect", data={"token": user.access_token},
        headers=basic(created["client_id"], "bcs_wrong"),
    )
    assert wrong.status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"password_grant": False}])
async def test_the_password_grant_can_be_turned_off(api: Api) -> None:
    await api.register("nopassword")
    response = await api.login("nopassword")
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


async def test_client_credentials_for_a_resource_server(api: Api) -> None:
    admin = await api.account("admin")
    for name in ("orders:read", "orders:write"):
        created = await api.client.post(
            "/admin/scopes", json={"name": name, "description": name}, headers=admin.headers
        )
        assert created.status_code == 201
    server = await api.client.post(
        "/admin/resource-servers", headers=admin.headers,
        json={"identifier": ORDERS, "name": "Orders", "scopes": ["orders:read", "orders:write"]},
    )
    assert server.status_code == 201
    client = await register_client(
        api, admin, grant_types=["client_credentials"], scopes=["orders:read", "me"]
    )
    answer = await client_token(api, client["client_id"], client["client_secret"], resource=ORDERS)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read"
    unknown = await client_token(api, client["client_id"], client["client_secret"],
                                 resource="https://unknown.example")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    # Introspected by the API it is for: live, with the client named.
    introspected = await api.client.post(
        "/auth/introspect", data={"token": answer.json()["access_token"]},
        headers=basic(client["client_id"], client["client_secret"]),
    )
    body = introspected.json()
    assert body["active"] and body["client_id"] == body["sub"] == client["client_id"]
    assert body["aud"] == ORDERS and "username" not in body
