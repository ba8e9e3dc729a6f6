"""Administration: who may use it, user search, roles, disabling, deletion, sessions, audit."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import PASSWORD, Account, Api

USER_FIELDS = {
    "id", "username", "email", "full_name", "roles", "is_active", "created_at", "email_verified",
}
AUDIT_FIELDS = {"id", "at", "event", "user_id", "ip", "detail"}
MISSING_ID = "00000000-0000-0000-0000-000000000000"
CLIENT_IP = "203.0.113.7"


def insufficient(scope: str) -> str:
    return f'Bearer error="insufficient_scope", scope="{scope}"'


# (method, path template, JSON body, the scope it needs); {id} is another user's id.
ENDPOINTS = {
    "list users": ("GET", "/admin/users", None, "users:read"),
    "patch user": ("PATCH", "/admin/users/{id}", {"roles": ["admin"]}, "users:write"),
    "delete user": ("DELETE", "/admin/users/{id}", None, "users:write"),
    "end sessions": ("DELETE", "/admin/users/{id}/sessions", None, "users:write"),
    "audit": ("GET", "/admin/audit", None, "audit:read"),
}
ROLE_SCOPES = {
    "user": {"me", "todos:read", "todos:write"},
    "moderator": {"me", "todos:read", "todos:write", "users:read", "todos:moderate"},
}


@pytest.mark.parametrize("role", list(ROLE_SCOPES))
async def test_admin_endpoints_need_their_scope(api: Api, role: str) -> None:
    subject = await api.account(role)
    target = await api.account()
    outcomes = {}
    for endpoint, (method, path, body, _) in ENDPOINTS.items():
        response = await api.client.request(
            method, path.format(id=target.id), json=body, headers=subject.headers
        )
        outcomes[endpoint] = (response.status_code, response.headers.get("www-authenticate"))
    expected = {
        endpoint: (200, None) if scope in ROLE_SCOPES[role] else (403, insufficient(scope))
        for endpoint, (_, _, _, scope) in ENDPOINTS.items()
    }
    assert outcomes == expected
    # Nothing happened to the target.
    me = await api.client.get("/users/me", headers=target.headers)
    assert me.status_code == 200 and me.json()["roles"] == ["user"]


async def test_admin_endpoints_need_credentials(api: Api) -> None:
    outcomes = {}
    for endpoint, (method, path, body, _) in ENDPOINTS.items():
        response = await api.client.request(method, path.format(id=MISSING_ID), json=body)
        outcomes[endpoint] = (response.status_code, response.headers.get_list("www-authenticate"))
    assert outcomes == dict.fromkeys(ENDPOINTS, (401, ["Bearer"]))


async def test_admin_scope_must_be_in_the_token_too(api: Api) -> None:
    """An admin who logged in with a narrow scope holds only that scope."""
    admin = await api.account("admin", scope="me users:read")
    assert admin.scope == "me users:read"
    target = await api.account()
    assert (await api.client.get("/admin/users", headers=admin.headers)).status_code == 200
    response = await api.client.patch(
        f"/admin/users/{target.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == insufficient("users:write")
    audit = await api.client.get("/admin/audit", headers=admin.headers)
    assert audit.status_code == 403
    assert audit.headers["www-authenticate"] == insufficient("audit:read")


async def test_search_and_page_users(api: Api) -> None:
    admin = await api.account("admin")
    names = [f"Zebra{i}_{api.unique('z')}" for i in range(3)]
    for name in names:
        assert (await api.register(name)).status_code == 201
    await api.register("unrelated_person")

    everyone = (await api.client.get("/admin/users", headers=admin.headers)).json()
    assert set(everyone) == {"items", "total", "limit", "offset"}
    assert (everyone["total"], everyone["limit"], everyone["offset"]) == (5, 50, 0)
    assert all(set(user) == USER_FIELDS for user in everyone["items"])
    assert "hashed_password" not in str(everyone) and PASSWORD not in str(everyone)

    found = (await api.client.get("/admin/users?q=zEBRA", headers=admin.headers)).json()
    assert found["total"] == 3
    assert sorted(user["username"] for user in found["items"]) == sorted(names)

    by_email = (
        await api.client.get(
            "/admin/users", params={"q": "unrelated_person@EXAMPLE"}, headers=admin.headers
        )
    ).json()
    assert [user["username"] for user in by_email["items"]] == ["unrelated_person"]

    first = (await api.client.get("/admin/users?q=zebra&limit=2", headers=admin.headers)).json()
    second = (
        await api.client.get("/admin/users?q=zebra&limit=2&offset=2", headers=admin.headers)
    ).json()
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (3, 2, 0, 2)
    assert (second["total"], second["offset"], len(second["items"])) == (3, 2, 1)
    paged = [user["username"] for user in first["items"] + second["items"]]
    assert sorted(paged) == sorted(names)

    # LIKE wildcards in q are literal characters.
    for wildcard in ("%", "z%a", "Zebra_"):
        none = await api.client.get("/admin/users", params={"q": wildcard}, headers=admin.headers)
        assert none.status_code == 200 and none.json()["total"] == 0, wildcard
    nothing = (await api.client.get("/admin/users?q=no-such-user", headers=admin.headers)).json()
    assert nothing["total"] == 0 and nothing["items"] == []
    for query in ("limit=101", "limit=0", "offset=-1", "q=" + "x" * 101):
        response = await api.client.get(f"/admin/users?{query}", headers=admin.headers)
        assert response.status_code == 422, query


INVALID_PATCHES: dict[str, dict[str, Any]] = {
    "unknown role": {"roles": ["root"]},
    "one unknown role": {"roles": ["user", "superuser"]},
    "a role name with a NUL": {"roles": ["\x00"]},
    "a role name in capitals": {"roles": ["Admin"]},
    "roles not a list": {"roles": "admin"},
    "unknown field": {"hashed_password": "x"},
    "is_active not a boolean": {"is_active": "maybe"},
}


async def test_invalid_user_changes_are_422(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    statuses = {
        case: (
            await api.client.patch(f"/admin/users/{target.id}", json=patch, headers=admin.headers)
        ).status_code
        for case, patch in INVALID_PATCHES.items()
    }
    assert statuses == dict.fromkeys(INVALID_PATCHES, 422)
    me = await api.client.get("/users/me", headers=target.headers)
    assert me.status_code == 200 and me.json()["roles"] == ["user"]


async def test_promotion_applies_from_the_next_login(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    promoted = await api.client.patch(
        f"/admin/users/{target.id}", json={"roles": ["user", "moderator"]}, headers=admin.headers
    )
    assert promoted.status_code == 200, promoted.text
    assert set(promoted.json()) == USER_FIELDS
    assert promoted.json()["roles"] == ["moderator", "user"]
    profile = await api.client.get(f"/users/{target.id}", headers=admin.headers)
    assert profile.json()["roles"] == ["moderator", "user"]

    # The old token carries the scopes granted at its login.
    old = await api.client.get("/admin/users", headers=target.headers)
    assert old.status_code == 403
    assert old.headers["www-authenticate"] == insufficient("users:read")

    await api.relogin(target)
    assert "users:read" in target.scope.split() and "todos:moderate" in target.scope.split()
    assert "users:write" not in target.scope.split()
    assert (await api.client.get("/admin/users", headers=target.headers)).status_code == 200


async def test_demotion_applies_to_the_very_next_request(api: Api) -> None:
    admin = await api.account("admin")
    demoted = await api.account("admin")
    assert (await api.client.get("/admin/audit", headers=demoted.headers)).status_code == 200

    response = await api.client.patch(
        f"/admin/users/{demoted.id}", json={"roles": ["user"]}, headers=admin.headers
    )
    assert response.status_code == 200 and response.json()["roles"] == ["user"]

    for path, scope in (("/admin/users", "users:read"), ("/admin/audit", "audit:read")):
        old = await api.client.get(path, headers=demoted.headers)
        assert old.status_code == 403, path
        assert old.headers["www-authenticate"] == insufficient(scope)
    back = await api.client.patch(
        f"/admin/users/{admin.id}", json={"roles": ["user"]}, headers=demoted.headers
    )
    assert back.status_code == 403
    assert (await api.client.get("/users/me", headers=admin.headers)).json()["roles"] == ["admin"]
    # The demoted user keeps what a user may do; a refresh does not bring the rest back.
    assert (await api.client.get("/users/me", headers=demoted.headers)).status_code == 200
    refreshed = await api.refresh(demoted.refresh_token)
    assert refreshed.status_code == 200
    assert refreshed.json()["scope"] == "me todos:read todos:write"


@pytest.mark.parametrize("settings_overrides", [{"basic_auth": True}])
async def test_disabling_a_user_ends_every_credential(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    key = await api.api_key(target, ["me"])
    assert (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code == 200

    response = await api.client.patch(
        f"/admin/users/{target.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False

    token = await api.client.get("/users/me", headers=target.headers)
    assert token.status_code == 401
    assert token.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    keyed = await api.client.get("/users/me", headers={"X-API-Key": key})
    assert keyed.status_code == 401
    assert (await api.refresh(target.refresh_token)).status_code == 400
    login = await api.login(target.username)
    assert login.status_code == 403, login.text
    wrong = await api.login(target.username, "not-the-password")
    assert wrong.status_code == 401  # a wrong password does not learn the account is disabled
    basic = await api.client.get("/users/me", auth=(target.username, PASSWORD))
    assert basic.status_code == 401

    # Enabling again allows a new login; the old credentials stay ended.
    enabled = await api.client.patch(
        f"/admin/users/{target.id}", json={"is_active": True}, headers=admin.headers
    )
    assert enabled.status_code == 200 and enabled.json()["is_active"] is True
    assert (await api.login(target.username)).status_code == 200
    assert (await api.client.get("/users/me", headers=target.headers)).status_code == 401
    assert (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code == 401


async def test_delete_user(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    todo = await api.client.post("/todos", json={"title": "left behind"}, headers=target.headers)
    assert todo.status_code == 201

    response = await api.client.delete(f"/admin/users/{target.id}", headers=admin.headers)
    assert response.status_code == 204, response.text

    gone = await api.client.get("/users/me", headers=target.headers)
    assert gone.status_code == 401
    assert gone.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await api.login(target.username)).status_code == 401
    assert (await api.client.get(f"/users/{target.id}", headers=admin.headers)).status_code == 404
    listed = (await api.client.get("/admin/users", headers=admin.headers)).json()
    assert target.id not in {user["id"] for user in listed["items"]}
    # A deleted (or never existing) user is a 404 for every admin endpoint.
    for user_id in (target.id, MISSING_ID):
        for method, path, body in (
            ("PATCH", f"/admin/users/{user_id}", {"roles": ["user"]}),
            ("DELETE", f"/admin/users/{user_id}", None),
            ("DELETE", f"/admin/users/{user_id}/sessions", None),
        ):
            again = await api.client.request(method, path, json=body, headers=admin.headers)
            assert again.status_code == 404, (method, path, again.text)


async def test_end_a_users_sessions(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    second = (await api.login(target.username)).json()

    response = await api.client.delete(f"/admin/users/{target.id}/sessions", headers=admin.headers)
    assert response.status_code == 204, response.text

    for access, refresh in (
        (target.access_token, target.refresh_token),
        (second["access_token"], second["refresh_token"]),
    ):
        ended = await api.client.get("/users/me", headers={"Authorization": f"Bearer {access}"})
        assert ended.status_code == 401
        assert ended.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        refreshed = await api.refresh(refresh)
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # The admin's own session is another user's: untouched. The target may log in again.
    assert (await api.client.get("/users/me", headers=admin.headers)).status_code == 200
    await api.relogin(target)
    assert (await api.client.get("/users/me", headers=target.headers)).status_code == 200


async def audit(api: Api, admin: Account, **params: str) -> dict[str, Any]:
    response = await api.client.get("/admin/audit", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_audit_trail(api: Api) -> None:
    admin = await api.account("admin")
    name = api.unique("audited")
    registered = await api.register(name)
    assert registered.status_code == 201
    user_id = registered.json()["id"]
    assert (await api.login(name, "not-the-password")).status_code == 401
    assert (await api.login(name)).status_code == 200

    page = await audit(api, admin, user_id=user_id)
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)
    assert all(set(item) == AUDIT_FIELDS for item in page["items"])
    assert all(item["user_id"] == user_id for item in page["items"])
    # Newest first.
    assert [item["event"] for item in page["items"]] == [
        "login_succeeded",
        "login_failed",
        "email_verification_sent",
        "register",
    ]
    assert all(item["ip"] == CLIENT_IP for item in page["items"])
    assert PASSWORD not in str(page) and "not-the-password" not in str(page)

    logins = await audit(api, admin, event="login_succeeded")
    assert {item["user_id"] for item in logins["items"]} == {admin.id, user_id}
    assert all(item["event"] == "login_succeeded" for item in logins["items"])
    both = await audit(api, admin, event="register", user_id=user_id)
    assert both["total"] == 1 and both["items"][0]["event"] == "register"
    assert both["items"][0]["detail"] == {"roles": ["user"]}
    paged = await audit(api, admin, user_id=user_id, limit="1", offset="1")
    assert paged["total"] == 4 and [i["event"] for i in paged["items"]] == ["login_failed"]
    assert (await audit(api, admin, event="no_such_event"))["total"] == 0


async def test_admin_actions_are_audited(api: Api) -> None:
    admin = await api.account("admin")
    target = await api.account()
    await api.client.patch(
        f"/admin/users/{target.id}", json={"roles": ["moderator"]}, headers=admin.headers
    )
    await api.client.patch(
        f"/admin/users/{target.id}", json={"is_active": False}, headers=admin.headers
    )
    await api.client.delete(f"/admin/users/{target.id}", headers=admin.headers)
    events = [item["event"] for item in (await audit(api, admin, user_id=target.id))["items"]]
    assert events[:3] == ["user_deleted", "user_disabled", "role_changed"]
    changed = (await audit(api, admin, user_id=target.id, event="role_changed"))["items"][0]
    assert changed["detail"] == {"from": ["user"], "to": ["moderator"], "by": admin.id}
