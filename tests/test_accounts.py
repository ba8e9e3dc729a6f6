"""Accounts: registration rules, the caller's own profile, password changes, deletion,
profiles by id, concurrent registration and the request-body limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bastion.app import create_app
from bastion.config import Settings
from bastion.db.engine import transaction
from bastion.db.models import User
from bastion.runtime import Runtime, build_runtime
from conftest import PASSWORD, Api

NEW_PASSWORD = "copper-Meadow-27-violin"
LIMIT = 64 * 1024
USER_FIELDS = {
    "id", "username", "email", "full_name", "roles", "is_active", "created_at", "email_verified",
}


def body(username: str, **extra: Any) -> dict[str, Any]:
    return {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **extra}


# Registration: validation

WEAK_OR_MALFORMED: dict[str, dict[str, Any]] = {
    # username: 3-32 of [A-Za-z0-9_.-]
    "username too short": {"username": "ab"},
    "username too long": {"username": "a" * 33},
    "username empty": {"username": ""},
    "username with space": {"username": "has space"},
    "username with slash": {"username": "slash/name"},
    "username with @": {"username": "at@sign"},
    "username non-ascii": {"username": "émile"},
    "username trailing newline": {"username": "name\n"},
    # password: 8-256 characters, not common, not the username or email
    "password 7 chars": {"password": "Sh0rt-x"},
    "password 257 chars": {"password": "x9-" * 85 + "xy"},
    "password common qwerty123": {"password": "qwerty123"},
    "password common iloveyou1": {"password": "iloveyou1"},
    "password common in any case": {"password": "PaSsWoRd"},
    "password = username": {"username": "walrus_keeper", "password": "walrus_keeper"},
    "password = username, other case": {"username": "walrus_keeper", "password": "WALRUS_KEEPER"},
    "password = email": {"email": "walrus@example.com", "password": "walrus@example.com"},
    # email
    "email invalid": {"email": "not-an-email"},
    "email missing": {"email": None},
    # no control characters anywhere (a NUL must not reach the database)
    "username NUL": {"username": "nul\x00name"},
    "username BEL": {"username": "bell\x07name"},
    "full_name NUL": {"full_name": "Alice\x00Example"},
    "full_name ESC": {"full_name": "Alice\x1b[31mRed"},
    "full_name newline": {"full_name": "Alice\nExample"},
    "email NUL in local part": {"email": "ali\x00ce@example.com"},
    "email NUL in domain": {"email": "alice@exam\x00ple.com"},
    "email trailing NUL": {"email": "alice@example.com\x00"},
    # no mass assignment
    "unknown field id": {"id": "00000000-0000-0000-0000-000000000001"},
    "unknown field roles": {"roles": ["admin"]},
    "unknown field is_active": {"is_active": False},
    "unknown field hashed_password": {"hashed_password": "$argon2id$v=19$m=65536,t=3,p=4$x$y"},
}


async def test_register_refuses_invalid_input(api: Api) -> None:
    """Every case is a 422 (never a 201, a 409 or a 500), and creates nothing."""
    name = api.unique("valid")
    statuses = {}
    for case, change in WEAK_OR_MALFORMED.items():
        payload = body(name) | change
        payload = {k: v for k, v in payload.items() if v is not None}
        statuses[case] = (await api.client.post("/auth/register", json=payload)).status_code
    assert statuses == dict.fromkeys(WEAK_OR_MALFORMED, 422)
    # Nothing was created by any of them: the name is free, the account an ordinary one.
    created = await api.register(name)
    assert created.status_code == 201, created.text
    assert created.json()["roles"] == ["user"] and created.json()["is_active"] is True
    assert created.json()["id"] != WEAK_OR_MALFORMED["unknown field id"]["id"]


@pytest.mark.parametrize(
    "username, password",
    [
        pytest.param("a.b", "Zq7#mV2p", id="shortest"),  # 8 random characters: strong enough
        pytest.param(
            "Z_-." + "9" * 28, ("violet-Harbor-91-lantern-copper-Meadow-27-" * 7)[:256],
            id="longest",
        ),
    ],
)
async def test_register_accepts_values_at_the_bounds(
    api: Api, username: str, password: str
) -> None:
    assert len(username) in (3, 32) and len(password) in (8, 256)
    response = await api.register(username, password=password, full_name="Ann Bounds")
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user["username"] == username and user["full_name"] == "Ann Bounds"
    assert user["email"] == f"{username}@example.com"
    assert user["roles"] == ["user"] and user["is_active"] is True
    assert (await api.login(username, password)).status_code == 200


@pytest.mark.parametrize("field", ["username", "email"])
async def test_username_and_email_are_unique_ignoring_case(api: Api, field: str) -> None:
    name = api.unique("Case")
    first = await api.register(name, email=f"Mail.{name}@Example.com")
    assert first.status_code == 201, first.text
    other = api.unique("other")
    if field == "username":
        clashes = [
            {"username": name.upper(), "email": f"{other}@example.com"},
            {"username": name.lower(), "email": f"{other}@example.com"},
        ]
    else:
        clashes = [
            {"username": other, "email": f"mail.{name}@example.com".upper()},
            {"username": other, "email": f"mail.{name.lower()}@example.com"},
        ]
    for clash in clashes:
        again = await api.client.post("/auth/register", json={"password": PASSWORD, **clash})
        assert again.status_code == 409, (clash, again.text)
        assert "detail" in again.json()


# Registration: the per-IP quota and closing it


async def _register_from(runtime: Runtime, ip: str, username: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime), client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        return await other.post("/auth/register", json=body(username))


async def test_registrations_are_limited_per_ip(api: Api) -> None:
    """10 an hour from one IP by default, failed attempts (a taken name) included."""
    taken = api.unique("taken")
    statuses = [(await api.register(taken)).status_code for _ in range(3)]
    statuses += [(await api.register()).status_code for _ in range(7)]
    assert statuses == [201, 409, 409] + [201] * 7
    refused = await api.register()
    assert refused.status_code == 429, refused.text
    assert 3_500 <= int(refused.headers["retry-after"]) <= 3_600
    name = api.unique()
    assert (await _register_from(api.runtime, "198.51.100.23", name)).status_code == 201
    # The refused attempt created nothing, and login is not limited by it.
    assert (await api.login(name)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"register_max_per_ip": 2}])
async def test_the_registration_quota_is_configurable(api: Api) -> None:
    assert [(await api.register()).status_code for _ in range(3)] == [201, 201, 429]


@pytest.mark.redis
async def test_the_registration_quota_is_shared_through_redis(
    settings: Settings, redis_url: str
) -> None:
    """Two instances on one Redis: sign-ups on A and B add up."""
    import redis.asyncio as redis

    await redis.from_url(redis_url).flushdb()
    shared = Settings(
        database_url=settings.database_url, redis_url=redis_url, register_max_per_ip=3,
        _env_file=None,
    )
    runtimes = [await build_runtime(shared), await build_runtime(shared)]
    try:
        statuses = [
            (await _register_from(runtimes[i % 2], "198.51.100.5", Api.unique())).status_code
            for i in range(4)
        ]
        assert statuses == [201, 201, 201, 429]
    finally:
        for runtime in runtimes:
            await runtime.close()
        await redis.from_url(redis_url).flushdb()


@pytest.mark.parametrize("settings_overrides", [{"registration": "closed"}])
async def test_closed_registration_is_403_and_creates_nothing(api: Api) -> None:
    name = api.unique()
    response = await api.register(name)
    assert response.status_code == 403, response.text
    assert response.json() == {
        "detail": "registration is closed: an administrator creates accounts"
    }
    async with transaction(api.runtime.sessionmaker) as db:
        count = await db.scalar(select(func.count()).select_from(User))
    assert count == 0
    # Accounts made by an administrator (the CLI and the admin API use the same service) work.
    admin = await api.account("admin")
    assert (await api.client.get("/users/me", headers=admin.headers)).status_code == 200


# The caller's own account


async def test_read_me(api: Api) -> None:
    alice = await api.account()
    response = await api.client.get("/users/me", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    me = response.json()
    assert set(me) == USER_FIELDS
    assert me["id"] == alice.id and me["username"] == alice.username
    assert me["email"] == alice.email and me["roles"] == ["user"] and me["is_active"] is True


async def test_change_full_name_needs_no_password(api: Api) -> None:
    alice = await api.account()
    response = await api.client.patch(
        "/users/me", json={"full_name": "Alice Liddell"}, headers=alice.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Alice Liddell"
    assert response.json()["email"] == alice.email
    me = await api.client.get("/users/me", headers=alice.headers)
    assert me.json()["full_name"] == "Alice Liddell"


async def test_change_email_requires_the_current_password(api: Api) -> None:
    alice = await api.account()
    for refused in ({}, {"current_password": "wrong-password-1"}):
        patch = {"email": "Moved.Alice@example.com", **refused}
        response = await api.client.patch("/users/me", json=patch, headers=alice.headers)
        assert response.status_code == 403, (refused, response.text)
        me = await api.client.get("/users/me", headers=alice.headers)
        assert me.json()["email"] == alice.email

    response = await api.client.patch(
        "/users/me",
        json={"email": "Moved.Alice@example.com", "current_password": PASSWORD},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["email"] == "Moved.Alice@example.com"
    me = await api.client.get("/users/me", headers=alice.headers)
    assert me.json()["email"] == "Moved.Alice@example.com"
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
    me = await api.client.get("/users/me", headers=alice.headers)
    assert me.json()["email"] == alice.email


REFUSED_PATCHES: dict[str, dict[str, Any]] = {
    "roles": {"roles": ["admin"]},
    "is_active": {"is_active": False},
    "username": {"username": "renamed"},
    "id": {"id": "00000000-0000-0000-0000-000000000001"},
    "hashed_password": {"hashed_password": "x"},
    "NUL in full_name": {"full_name": "Bad\x00Name"},
    "NUL in email": {"email": "bad\x00@example.com", "current_password": PASSWORD},
}


async def test_patch_me_refuses_unknown_fields_and_control_characters(api: Api) -> None:
    alice = await api.account()
    statuses = {
        case: (await api.client.patch("/users/me", json=patch, headers=alice.headers)).status_code
        for case, patch in REFUSED_PATCHES.items()
    }
    assert statuses == dict.fromkeys(REFUSED_PATCHES, 422)
    me = (await api.client.get("/users/me", headers=alice.headers)).json()
    assert me["roles"] == ["user"] and me["is_active"] is True and me["id"] == alice.id
    assert me["username"] == alice.username and me["email"] == alice.email
    assert me["full_name"] is None


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


async def test_change_password_refusals_leave_the_password_unchanged(api: Api) -> None:
    alice = await api.account()
    attempts = {
        "wrong current password": ("not-my-password", NEW_PASSWORD),
        "common new password": (PASSWORD, "qwerty123"),
        "guessable new password": (PASSWORD, "Password123!"),
        "short new password": (PASSWORD, "short1!"),
        "new password = username": (PASSWORD, alice.username.upper()),
        "new password = email": (PASSWORD, alice.email),
    }
    statuses = {}
    for case, (current, new) in attempts.items():
        response = await api.client.post(
            "/users/me/password",
            json={"current_password": current, "new_password": new},
            headers=alice.headers,
        )
        statuses[case] = response.status_code
    assert statuses == {
        "wrong current password": 403,
        "common new password": 422,
        "guessable new password": 422,
        "short new password": 422,
        "new password = username": 422,
        "new password = email": 422,
    }
    assert (await api.login(alice.username, NEW_PASSWORD)).status_code == 401
    assert (await api.login(alice.username, PASSWORD)).status_code == 200


# Account deletion


async def test_delete_me_with_wrong_password_is_403(api: Api) -> None:
    alice = await api.account()
    for password in ({"password": "not-my-password"}, {}):
        response = await api.client.request(
            "DELETE", "/users/me", json=password, headers=alice.headers
        )
        assert response.status_code == (403 if password else 422), response.text
    assert (await api.client.get("/users/me", headers=alice.headers)).status_code == 200
    assert (await api.login(alice.username)).status_code == 200


async def test_delete_me_removes_the_account_and_its_data(api: Api) -> None:
    alice = await api.account()
    moderator = await api.account("moderator")
    todo = await api.client.post("/todos", json={"title": "mine"}, headers=alice.headers)
    assert todo.status_code == 201
    todo_id = todo.json()["id"]
    key = await api.api_key(alice, ["me"])
    assert (await api.client.get("/users/me", headers={"X-API-Key": key})).status_code == 200

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


@pytest.mark.parametrize("role, status", [("user", 404), ("moderator", 200), ("admin", 200)])
async def test_read_profiles_by_id(api: Api, role: str, status: int) -> None:
    subject = await api.account(role)
    other = await api.account()

    own = await api.client.get(f"/users/{subject.id}", headers=subject.headers)
    assert own.status_code == 200
    assert own.json()["id"] == subject.id and own.json()["roles"] == [role]

    response = await api.client.get(f"/users/{other.id}", headers=subject.headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert set(response.json()) == USER_FIELDS
        assert response.json()["username"] == other.username
    else:
        assert other.username not in response.text
    missing = await api.client.get(
        "/users/00000000-0000-0000-0000-000000000000", headers=subject.headers
    )
    assert missing.status_code == 404


# Concurrency


@pytest.mark.parametrize("settings_overrides", [{"register_max_per_ip": 100}])  # not the quota
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

TOO_LARGE = {"detail": "request body too large"}


def json_of_size(size: int) -> bytes:
    """A registration body of exactly ``size`` bytes (its password is far too long)."""
    skeleton = {"username": "sizer", "email": "sizer@example.com", "password": ""}
    padding = size - len(json.dumps(skeleton).encode())
    skeleton["password"] = "p" * padding
    encoded = json.dumps(skeleton).encode()
    assert len(encoded) == size
    return encoded


async def test_json_body_over_64_kib_is_413(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    at_limit = await api.client.post("/auth/register", content=json_of_size(LIMIT), headers=headers)
    assert at_limit.status_code == 422, at_limit.text  # read, parsed and refused on its merits
    over = await api.client.post("/auth/register", content=json_of_size(LIMIT + 1), headers=headers)
    assert over.status_code == 413
    assert over.json() == TOO_LARGE


async def test_form_body_over_64_kib_is_413(api: Api) -> None:
    response = await api.client.post(
        "/auth/token", data={"username": "someone", "password": "p" * LIMIT}
    )
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def chunked(head: bytes, filler_bytes: int, tail: bytes) -> AsyncIterator[bytes]:
    """A body sent without Content-Length, in 8 KiB chunks."""
    yield head
    remaining = filler_bytes
    while remaining > 0:
        step = min(8192, remaining)
        yield b"p" * step
        remaining -= step
    yield tail


@pytest.mark.parametrize(
    "path, content_type, head, tail, small_status",
    [
        pytest.param(
            "/auth/register",
            "application/json",
            b'{"username": "chunky", "email": "chunky@example.com", "password": "',
            b'"}',
            422,  # a 4 KiB password: too long
            id="json",
        ),
        pytest.param(
            "/auth/token",
            "application/x-www-form-urlencoded",
            b"grant_type=password&username=chunky&password=",
            b"",
            401,  # no such user
            id="form",
        ),
    ],
)
async def test_chunked_body_over_64_kib_is_413(
    api: Api, path: str, content_type: str, head: bytes, tail: bytes, small_status: int
) -> None:
    headers = {"Content-Type": content_type}
    small = await api.client.post(path, content=chunked(head, 4096, tail), headers=headers)
    assert "content-length" not in small.request.headers
    assert small.request.headers["transfer-encoding"] == "chunked"
    assert small.status_code == small_status, small.text

    large = await api.client.post(path, content=chunked(head, LIMIT, tail), headers=headers)
    assert "content-length" not in large.request.headers
    assert large.status_code == 413, large.text
    assert large.json() == TOO_LARGE
