"""Accounts: registration rules, the caller's own profile, password changes, deletion,
profiles by id, concurrent registration and the request-body limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.db.engine import transaction
from bastion.db.models import User
from conftest import PASSWORD, Api

NEW_PASSWORD = "copper-Meadow-27-violin"
LIMIT = 64 * 1024
USER_FIELDS = {"id", "username", "email", "full_name", "roles", "is_active", "created_at"}


def body(username: str, **extra: Any) -> dict[str, Any]:
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **extra}


# Registration: usernames


@pytest.mark.parametrize(
    "username",
    [
        pytest.param("ab", id="too-short"),
        pytest.param("a" * 33, id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("slash/name", id="slash"),
        pytest.param("at@sign", id="at-sign"),
        pytest.param("émile", id="non-ascii"),
        pytest.param("name\n", id="trailing-newline"),
    ],
)
async def test_register_refuses_malformed_username(api: Api, username: str) -> None:
    response = await api.client.post(
        "/auth/register",
        json={"username": username, "email": "someone@example.com", "password": PASSWORD},
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "username", [pytest.param("a.b", id="shortest"), pytest.param("Z_-." + "9" * 28, id="longest")]
)
async def test_register_accepts_username_at_the_bounds(api: Api, username: str) -> None:
    response = await api.client.post(
        "/auth/register",
        json={"username": username, "email": "bounds@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["username"] == username
    assert user["roles"] == ["user"] and user["is_active"] is True


# Registration: uniqueness


async def test_username_is_unique_ignoring_case(api: Api) -> None:
    name = api.unique("Case")
    first = await api.register(name)
    assert first.status_code == 201, first.text
    again = await api.register(name.upper(), email=f"other-{name}@example.com")
    assert again.status_code == 409
    assert "detail" in again.json()
    lower = await api.register(name.lower(), email=f"third-{name}@example.com")
    assert lower.status_code == 409


async def test_email_is_unique_ignoring_case(api: Api) -> None:
    first = await api.register("mailer1", email="Shared.Person@Example.com")
    assert first.status_code == 201, first.text
    again = await api.register("mailer2", email="shared.person@EXAMPLE.COM")
    assert again.status_code == 409
    assert "detail" in again.json()


# Registration: passwords


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Sh0rt-x", id="7-chars"),
        pytest.param("x9-" * 85 + "xy", id="257-chars"),
        pytest.param("qwerty123", id="common-qwerty123"),
        pytest.param("iloveyou1", id="common-iloveyou1"),
        pytest.param("PaSsWoRd", id="common-any-case"),
    ],
)
async def test_register_refuses_weak_password(api: Api, password: str) -> None:
    name = api.unique()
    response = await api.register(name, password=password)
    assert response.status_code == 422, response.text
    # Nothing was created: the same username is still free.
    assert (await api.register(name)).status_code == 201


@pytest.mark.parametrize(
    "password", [pytest.param("Ok-pass8", id="8-chars"), pytest.param("x9-" * 85 + "x", id="256")]
)
async def test_register_accepts_password_at_the_bounds(api: Api, password: str) -> None:
    name = api.unique()
    assert len(password) in (8, 256)
    response = await api.register(name, password=password)
    assert response.status_code == 201, response.text
    assert (await api.login(name, password)).status_code == 200


@pytest.mark.parametrize("same_as", ["username", "username-upper", "email"])
async def test_register_refuses_password_equal_to_username_or_email(
    api: Api, same_as: str
) -> None:
    name = api.unique("walrus_keeper")
    email = f"{name}@example.com"
    password = {"username": name, "username-upper": name.upper(), "email": email}[same_as]
    response = await api.register(name, email=email, password=password)
    assert response.status_code == 422, response.text


# Registration: no mass assignment, no control characters


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"id": "00000000-0000-0000-0000-000000000001"}, id="id"),
        pytest.param({"roles": ["admin"]}, id="roles"),
        pytest.param({"is_active": False}, id="is_active"),
        pytest.param({"hashed_password": "$argon2id$v=19$m=65536,t=3,p=4$x$y"}, id="hash"),
    ],
)
async def test_register_rejects_unknown_fields(api: Api, extra: dict[str, Any]) -> None:
    name = api.unique()
    response = await api.client.post("/auth/register", json=body(name, **extra))
    assert response.status_code == 422, response.text
    # The account was not created, with or without the smuggled field.
    created = await api.register(name)
    assert created.status_code == 201, created.text
    assert created.json()["roles"] == ["user"] and created.json()["is_active"] is True


@pytest.mark.parametrize(
    "field, value",
    [
        pytest.param("username", "nul\x00name", id="username-nul"),
        pytest.param("username", "bell\x07name", id="username-bell"),
        pytest.param("full_name", "Alice\x00Example", id="full_name-nul"),
        pytest.param("full_name", "Alice\x1b[31mRed", id="full_name-escape"),
        pytest.param("full_name", "Alice\nExample", id="full_name-newline"),
        pytest.param("email", "ali\x00ce@example.com", id="email-nul"),
        pytest.param("email", "alice@exam\x00ple.com", id="email-domain-nul"),
        pytest.param("email", "alice@example.com\x00", id="email-trailing-nul"),
    ],
)
async def test_register_refuses_control_characters(api: Api, field: str, value: str) -> None:
    payload = body(api.unique())
    payload[field] = value
    response = await api.client.post("/auth/register", json=payload)
    assert response.status_code == 422, response.text


async def test_register_refuses_invalid_email(api: Api) -> None:
    response = await api.register(api.unique(), email="not-an-email")
    assert response.status_code == 422


# The caller's own account


async def test_read_me(api: Api) -> None:
    alice = await api.account()
    response = await api.client.get("/users/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    me = response.json()
    assert set(me) == USER_FIELDS
    assert me["id"] == alice.id and me["username"] == alice.username
    assert me["email"] == alice.email and me["roles"] == ["user"]


async def test_change_full_name_needs_no_password(api: Api) -> None:
    alice = await api.account()
    response = await api.client.patch(
        "/users/me", json={"full_name": "Alice Liddell"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Alice Liddell"
    me = await api.client.get("/users/me", headers=alice.headers)
    assert me.json()["full_name"] == "Alice Liddell"


@pytest.mark.parametrize(
    "password", [pytest.param(None, id="missing"), pytest.param("wrong-password-1", id="wrong")]
)
async def test_change_email_without_the_current_password_is_403(
    api: Api, password: str | None
) -> None:
    alice = await api.account()
    patch: dict[str, Any] = {"email": "elsewhere@example.com"}
    if password is not None:
        patch["current_password"] = password
    response = await api.client.patch("/users/me", json=patch, headers=alice.headers)
    assert response.status_code == 403, response.text
    me = await api.client.get("/users/me", headers=alice.headers)
    assert me.json()["email"] == alice.email


async def test_change_email_with_the_current_password(api: Api) -> None:
    alice = await api.account()
    response = await api.client.patch(
        "/users/me",
        json={"email": "Moved.Alice@example.com", "current_password": PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "Moved.Alice@example.com"
    assert (await api.login("moved.alice@example.com")).status_code == 200
    assert (await api.login(alice.email)).status_code == 401


async def test_change_email_to_a_taken_one_is_409(api: Api) -> None:
    alice = await api.account()
    bob = await api.account()
    response = await api.client.patch(
        "/users/me",
        json={"email": bob.email.upper(), "current_password": PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 409, response.text


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"roles": ["admin"]}, id="roles"),
        pytest.param({"is_active": False}, id="is_active"),
        pytest.param({"username": "renamed"}, id="username"),
        pytest.param({"hashed_password": "x"}, id="hash"),
        pytest.param({"full_name": "Bad\x00Name"}, id="nul-full_name"),
    ],
)
async def test_patch_me_refuses_unknown_fields_and_control_characters(
    api: Api, patch: dict[str, Any]
) -> None:
    alice = await api.account()
    response = await api.client.patch("/users/me", json=patch, headers=alice.headers)
    assert response.status_code == 422, response.text
    me = (await api.client.get("/users/me", headers=alice.headers)).json()
    assert me["roles"] == ["user"] and me["is_active"] is True
    assert me["username"] == alice.username and me["full_name"] is None


# Password change


async def test_change_password_ends_other_sessions_but_not_the_callers(api: Api) -> None:
    alice = await api.account()
    other = (await api.login(alice.username)).json()
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert (await api.client.get("/users/me", headers=other_headers)).status_code == 200

    response = await api.client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 204, response.text

    assert (await api.login(alice.username, PASSWORD)).status_code == 401
    assert (await api.login(alice.username, NEW_PASSWORD)).status_code == 200
    # The caller's session goes on, access and refresh.
    assert (await api.client.get("/users/me", headers=alice.headers)).status_code == 200
    assert (await api.refresh(alice.refresh_token)).status_code == 200
    # The other session has ended.
    ended = await api.client.get("/users/me", headers=other_headers)
    assert ended.status_code == 401
    assert ended.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    refreshed = await api.refresh(other["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_change_password_with_wrong_current_password_is_403(api: Api) -> None:
    alice = await api.account()
    response = await api.client.post(
        "/users/me/password",
        json={"current_password": "not-my-password", "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 403
    assert (await api.login(alice.username, NEW_PASSWORD)).status_code == 401
    assert (await api.login(alice.username, PASSWORD)).status_code == 200


@pytest.mark.parametrize("new_password", ["qwerty123", "short1!", "username"])
async def test_change_password_applies_the_policy(api: Api, new_password: str) -> None:
    alice = await api.account()
    if new_password == "username":
        new_password = alice.username
    response = await api.client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=alice.headers,
    )
    assert response.status_code == 422, response.text
    assert (await api.login(alice.username, PASSWORD)).status_code == 200


# Account deletion


async def test_delete_me_with_wrong_password_is_403(api: Api) -> None:
    alice = await api.account()
    response = await api.client.request(
        "DELETE", "/users/me", json={"password": "not-my-password"}, headers=alice.headers
    )
    assert response.status_code == 403
    assert (await api.client.get("/users/me", headers=alice.headers)).status_code == 200


async def test_delete_me_removes_the_account_and_its_data(api: Api) -> None:
    alice = await api.account()
    moderator = await api.account("moderator")
    todo = await api.client.post("/todos", json={"title": "mine"}, headers=alice.headers)
    assert todo.status_code == 201
    todo_id = todo.json()["id"]
    key = await api.api_key(alice, ["me"])

    response = await api.client.request(
        "DELETE", "/users/me", json={"password": PASSWORD}, headers=alice.headers
    )
    assert response.status_code == 204, response.text

    gone = await api.client.get("/users/me", headers=alice.headers)
    assert gone.status_code == 401
    assert gone.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code == 401
    login = await api.login(alice.username)
    assert login.status_code == 401 and login.json()["error"] == "invalid_grant"
    assert (await api.refresh(alice.refresh_token)).status_code == 400
    # Todos and the profile are gone too, even for someone who may see anyone's.
    seen = await api.client.get(f"/todos/{todo_id}", headers=moderator.headers)
    assert seen.status_code == 404
    profile = await api.client.get(f"/users/{alice.id}", headers=moderator.headers)
    assert profile.status_code == 404
    # The name is free again.
    assert (await api.register(alice.username)).status_code == 201


# Profiles by id


@pytest.mark.parametrize("role", ["user", "moderator", "admin"])
async def test_read_own_profile_by_id(api: Api, role: str) -> None:
    subject = await api.account(role)
    response = await api.client.get(f"/users/{subject.id}", headers=subject.headers)
    assert response.status_code == 200
    assert response.json()["id"] == subject.id and response.json()["roles"] == [role]


@pytest.mark.parametrize("role, status", [("user", 404), ("moderator", 200), ("admin", 200)])
async def test_read_another_users_profile(api: Api, role: str, status: int) -> None:
    subject = await api.account(role)
    other = await api.account()
    response = await api.client.get(f"/users/{other.id}", headers=subject.headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["username"] == other.username
        assert set(response.json()) == USER_FIELDS
    missing = await api.client.get(
        "/users/00000000-0000-0000-0000-000000000000", headers=subject.headers
    )
    assert missing.status_code == 404


# Concurrency


async def test_concurrent_duplicate_registrations_make_one_account(api: Api) -> None:
    name = api.unique("racer")
    responses = await asyncio.gather(
        *(api.register(name, email=f"{name}-{i}@example.com") for i in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, statuses
    async with transaction(api.runtime.sessionmaker) as db:
        count = await db.scalar(
            select(func.count()).select_from(User).where(User.username_canonical == name.lower())
        )
    assert count == 1


# Request-body limit


def json_of_size(size: int) -> bytes:
    """A registration body of exactly ``size`` bytes (its password is far too long)."""
    skeleton = {"username": "sizer", "email": "sizer@example.com", "password": ""}
    padding = size - len(json.dumps(skeleton).encode())
    skeleton["password"] = "p" * padding
    encoded = json.dumps(skeleton).encode()
    assert len(encoded) == size
    return encoded


@pytest.mark.parametrize("size, status", [(LIMIT, 422), (LIMIT + 1, 413)])
async def test_json_body_limit(api: Api, size: int, status: int) -> None:
    response = await api.client.post(
        "/auth/register", content=json_of_size(size), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    if status == 413:
        assert response.json() == {"detail": "request body too large"}


async def test_form_body_over_the_limit_is_413(api: Api) -> None:
    response = await api.client.post(
        "/auth/token", data={"username": "someone", "password": "p" * (LIMIT + 10)}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large"}


async def chunked(head: bytes, filler_bytes: int, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    remaining = filler_bytes
    while remaining > 0:
        step = min(8192, remaining)
        yield b"p" * step
        remaining -= step
    yield tail


@pytest.mark.parametrize(
    "path, content_type, head, tail",
    [
        pytest.param(
            "/auth/register",
            "application/json",
            b'{"username": "chunky", "email": "chunky@example.com", "password": "',
            b'"}',
            id="json",
        ),
        pytest.param(
            "/auth/token",
            "application/x-www-form-urlencoded",
            b"grant_type=password&username=chunky&password=",
            b"",
            id="form",
        ),
    ],
)
@pytest.mark.parametrize("filler, status", [(4096, None), (LIMIT + 1, 413)])
async def test_chunked_body_limit(
    api: Api, path: str, content_type: str, head: bytes, tail: bytes, filler: int,
    status: int | None,
) -> None:
    response = await api.client.post(
        path, content=chunked(head, filler, tail), headers={"Content-Type": content_type}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    if status is None:
        # Small chunked bodies are read and judged on their merits.
        expected = 422 if path == "/auth/register" else 401
        assert response.status_code == expected, response.text
    else:
        assert response.status_code == status, response.text
        assert response.json() == {"detail": "request body too large"}
