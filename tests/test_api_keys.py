"""Personal API keys: shown once, scoped, revocable, header-only, expiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bastion.db.engine import transaction
from bastion.db.models import ApiKey
from conftest import Account, Api

KEY_FIELDS = {"id", "name", "prefix", "scopes", "created_at", "expires_at"}
CHALLENGES = ["Bearer"]  # a request that sent no Basic credentials is never offered Basic
ROLE_SCOPES = {
    "user": {"me", "todos:read", "todos:write"},
    "moderator": {"me", "todos:read", "todos:write", "users:read", "todos:moderate"},
}


async def create_key(api: Api, owner: Account, **body: Any) -> dict[str, Any]:
    payload = {"name": "ci", "scopes": ["me"], **body}
    response = await api.client.post("/users/me/api-keys", json=payload, headers=owner.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_create_shows_the_key_once(api: Api) -> None:
    alice = await api.account()
    response = await api.client.post(
        "/users/me/api-keys",
        json={"name": "deploy bot", "scopes": ["todos:write", "me", "todos:read"]},
        headers=alice.headers,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == KEY_FIELDS | {"key"}
    secret = created["key"]
    assert secret.startswith("bst_") and len(secret) > 40
    assert created["prefix"] == secret[: len(created["prefix"])] and len(created["prefix"]) < 20
    assert created["name"] == "deploy bot"
    assert created["scopes"] == ["me", "todos:read", "todos:write"]
    assert created["expires_at"] is None

    listed = await api.client.get("/users/me/api-keys", headers=alice.headers)
    assert listed.status_code == 200
    page = listed.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
    assert page["items"] == [{k: v for k, v in created.items() if k != "key"}]
    assert secret not in listed.text
    assert secret[len(created["prefix"]) :] not in listed.text


async def test_key_authenticates_on_users_me_and_todos(api: Api) -> None:
    alice = await api.account()
    key = (await create_key(api, alice, scopes=["me", "todos:read", "todos:write"]))["key"]

    me = await api.client.get("/users/me", headers=key_headers(key))
    assert me.status_code == 200 and me.json()["id"] == alice.id

    created = await api.client.post("/todos", json={"title": "by key"}, headers=key_headers(key))
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] == alice.id
    listed = await api.client.get("/todos", headers=key_headers(key))
    assert listed.status_code == 200
    assert [item["title"] for item in listed.json()["items"]] == ["by key"]
    # The same todo through the owner's bearer token.
    assert (await api.client.get("/todos", headers=alice.headers)).json()["total"] == 1


async def test_key_only_carries_its_own_scopes(api: Api) -> None:
    alice = await api.account()
    reader = (await create_key(api, alice, scopes=["todos:read"]))["key"]
    assert (await api.client.get("/todos", headers=key_headers(reader))).status_code == 200

    post = await api.client.post("/todos", json={"title": "nope"}, headers=key_headers(reader))
    assert post.status_code == 403
    assert post.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="todos:write"'
    )
    me = await api.client.get("/users/me", headers=key_headers(reader))
    assert me.status_code == 403
    assert me.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="me"'
    # Nor can it mint a wider key for itself.
    minted = await api.client.post(
        "/users/me/api-keys",
        json={"name": "x", "scopes": ["todos:write"]},
        headers=key_headers(reader),
    )
    assert minted.status_code == 403
    assert (await api.client.get("/todos", headers=alice.headers)).json()["total"] == 0


BEYOND = {
    "user": [["users:read"], ["me", "todos:moderate"], ["users:write"], ["audit:read"]],
    "moderator": [["users:write"], ["me", "users:read", "audit:read"]],
}


@pytest.mark.parametrize("role", list(BEYOND))
async def test_key_scopes_beyond_the_callers_are_403(api: Api, role: str) -> None:
    subject = await api.account(role)
    statuses = [
        (
            await api.client.post(
                "/users/me/api-keys",
                json={"name": "greedy", "scopes": scopes},
                headers=subject.headers,
            )
        ).status_code
        for scopes in BEYOND[role]
    ]
    assert statuses == [403] * len(BEYOND[role])
    listed = await api.client.get("/users/me/api-keys", headers=subject.headers)
    assert listed.json()["total"] == 0
    # Within the caller's own scopes is fine.
    own = await api.client.post(
        "/users/me/api-keys",
        json={"name": "ok", "scopes": sorted(ROLE_SCOPES[role])},
        headers=subject.headers,
    )
    assert own.status_code == 201, own.text
    assert own.json()["scopes"] == sorted(ROLE_SCOPES[role])


async def test_key_scopes_are_capped_by_the_token_that_creates_it(api: Api) -> None:
    admin = await api.account("admin", scope="me")
    response = await api.client.post(
        "/users/me/api-keys", json={"name": "x", "scopes": ["users:read"]}, headers=admin.headers
    )
    assert response.status_code == 403, response.text


INVALID_KEY_BODIES: dict[str, dict[str, Any]] = {
    "unknown scope": {"name": "x", "scopes": ["root"]},
    "one unknown scope": {"name": "x", "scopes": ["me", "todos:delete"]},
    "empty name": {"name": "", "scopes": ["me"]},
    "NUL in name": {"name": "bad\x00name", "scopes": ["me"]},
    "zero days": {"name": "x", "scopes": ["me"], "expires_in_days": 0},
    "unknown field": {"name": "x", "scopes": ["me"], "key_hash": "0" * 64},
    "no scopes field": {"name": "x"},
}


async def test_invalid_key_requests_are_422(api: Api) -> None:
    alice = await api.account()
    statuses = {
        case: (
            await api.client.post("/users/me/api-keys", json=body, headers=alice.headers)
        ).status_code
        for case, body in INVALID_KEY_BODIES.items()
    }
    assert statuses == dict.fromkeys(INVALID_KEY_BODIES, 422)
    assert (await api.client.get("/users/me/api-keys", headers=alice.headers)).json()["total"] == 0


async def test_deleted_key_stops_working_at_once(api: Api) -> None:
    alice = await api.account()
    created = await create_key(api, alice)
    kept = await create_key(api, alice, name="kept")
    key = created["key"]
    assert (await api.client.get("/users/me", headers=key_headers(key))).status_code == 200

    deleted = await api.client.delete(f"/users/me/api-keys/{created['id']}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text

    refused = await api.client.get("/users/me", headers=key_headers(key))
    assert refused.status_code == 401
    assert refused.headers.get_list("www-authenticate") == CHALLENGES
    listed = (await api.client.get("/users/me/api-keys", headers=alice.headers)).json()
    assert [item["id"] for item in listed["items"]] == [kept["id"]]
    assert (await api.client.get("/users/me", headers=key_headers(kept["key"]))).status_code == 200
    again = await api.client.delete(f"/users/me/api-keys/{created['id']}", headers=alice.headers)
    assert again.status_code == 404


async def test_other_users_keys_do_not_exist_for_you(api: Api) -> None:
    alice = await api.account()
    bob = await api.account()
    mine = await create_key(api, alice, name="alice's")
    theirs = await create_key(api, bob, name="bob's")
    page = (await api.client.get("/users/me/api-keys", headers=alice.headers)).json()
    assert [item["id"] for item in page["items"]] == [mine["id"]]
    response = await api.client.delete(f"/users/me/api-keys/{theirs['id']}", headers=alice.headers)
    assert response.status_code == 404
    assert (await api.client.get("/users/me", headers=key_headers(theirs["key"]))).json()[
        "id"
    ] == bob.id


async def test_unknown_keys_are_401(api: Api) -> None:
    outcomes = {}
    for key in ("bst_" + "A" * 43, "not-a-key", "bst_" + "A" * 200, "bst_"):
        response = await api.client.get("/users/me", headers=key_headers(key))
        outcomes[key] = (response.status_code, response.headers.get_list("www-authenticate"))
    assert outcomes == dict.fromkeys(outcomes, (401, CHALLENGES))


@pytest.mark.parametrize(
    "settings_overrides, status",
    [
        pytest.param({}, 401, id="default-off"),
        pytest.param({"api_key_query": True}, 200, id="when-enabled"),
    ],
)
async def test_api_key_query_parameter(api: Api, status: int) -> None:
    alice = await api.account()
    key = (await create_key(api, alice))["key"]
    response = await api.client.get("/users/me", params={"api_key": key})
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers.get_list("www-authenticate") == CHALLENGES


@pytest.mark.parametrize("settings_overrides", [{"state_cache_ttl": 0}])
async def test_expired_key_is_401(api: Api) -> None:
    alice = await api.account()
    created = await create_key(api, alice, expires_in_days=7)
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=6, hours=23) < expires_at - datetime.now(UTC) <= timedelta(days=7)
    key = created["key"]
    assert (await api.client.get("/users/me", headers=key_headers(key))).status_code == 200

    async with transaction(api.runtime.sessionmaker) as db:
        await db.execute(
            update(ApiKey)
            .where(ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    response = await api.client.get("/users/me", headers=key_headers(key))
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == CHALLENGES
    todos = await api.client.get("/todos", headers=key_headers(key))
    assert todos.status_code == 401
