"""Sessions: refresh-token rotation and reuse detection, the token endpoint's errors,
logout, revocation, listing and ending sessions, and purging ended ones."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from bastion.db.engine import transaction
from bastion.db.models import AuthSession, RefreshToken, User
from bastion.security.passwords import Verification
from bastion.services.sessions import purge_expired
from conftest import Account, Api

CLIENT_IP = "203.0.113.7"
SESSION_FIELDS = {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}
INVALID_TOKEN = 'Bearer error="invalid_token"'


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def session_id(access_token: str) -> str:
    """The ``sid`` claim (read without verification: the server has already verified it)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


async def login(api: Api, account: Account, user_agent: str = "test-agent") -> dict[str, Any]:
    response = await api.client.post(
        "/auth/token",
        data={"username": account.username, "password": account.password},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def works(api: Api, access_token: str) -> bool:
    """Whether the access token is accepted; a refusal must be 401 invalid_token."""
    response = await api.client.get("/users/me", headers=bearer(access_token))
    if response.status_code == 200:
        return True
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    return False


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["error_description"] and body["detail"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


# Rotation and reuse


async def test_refresh_rotates_the_refresh_token(api: Api) -> None:
    alice = await api.account()
    response = await api.refresh(alice.refresh_token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    tokens = response.json()
    assert set(tokens) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    assert tokens["refresh_token"] != alice.refresh_token
    assert tokens["access_token"] != alice.access_token
    assert tokens["scope"] == alice.scope == "me todos:read todos:write"
    assert session_id(tokens["access_token"]) == session_id(alice.access_token)
    assert await works(api, tokens["access_token"])
    # And the new refresh token is good for the next round.
    assert (await api.refresh(tokens["refresh_token"])).status_code == 200


async def test_reused_refresh_token_revokes_its_session(api: Api) -> None:
    alice = await api.account()
    other = await login(api, alice)
    rotated = (await api.refresh(alice.refresh_token)).json()
    assert await works(api, rotated["access_token"])

    reused = await api.refresh(alice.refresh_token)
    assert_oauth_error(reused, 400, "invalid_grant")

    # The whole session is gone: its newest refresh token and every access token.
    assert_oauth_error(await api.refresh(rotated["refresh_token"]), 400, "invalid_grant")
    assert not await works(api, rotated["access_token"])
    assert not await works(api, alice.access_token)
    # Another session of the same user is not touched.
    assert await works(api, other["access_token"])
    assert (await api.refresh(other["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_succeed_once(api: Api) -> None:
    alice = await api.account()
    responses = await asyncio.gather(*(api.refresh(alice.refresh_token) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 19, statuses
    for response in responses:
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_grant"
    # Only one new refresh token was ever issued for the spent one.
    async with transaction(api.runtime.sessionmaker) as db:
        issued = await db.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.session_id == session_id(alice.access_token))
        )
    assert issued == 2


async def test_refresh_may_narrow_the_scope_but_not_widen_it(api: Api) -> None:
    alice = await api.account()
    narrowed = await api.refresh(alice.refresh_token, scope="todos:read")
    assert narrowed.status_code == 200, narrowed.text
    tokens = narrowed.json()
    assert tokens["scope"] == "todos:read"
    assert (
        await api.client.get("/todos", headers=bearer(tokens["access_token"]))
    ).status_code == 200
    write = await api.client.post(
        "/todos", json={"title": "x"}, headers=bearer(tokens["access_token"])
    )
    assert write.status_code == 403

    reader = await api.account(scope="todos:read")
    assert reader.scope == "todos:read"
    wider = await api.refresh(reader.refresh_token, scope="todos:read todos:write")
    assert_oauth_error(wider, 400, "invalid_scope")
    unknown = await api.refresh(reader.refresh_token, scope="todos:read root")
    assert_oauth_error(unknown, 400, "invalid_scope")
    # A user may not refresh into scopes of a role they do not have either.
    beyond = await api.refresh(tokens["refresh_token"], scope="users:read")
    assert_oauth_error(beyond, 400, "invalid_scope")


async def test_access_and_refresh_tokens_are_not_interchangeable(api: Api) -> None:
    alice = await api.account()
    as_refresh = await api.refresh(alice.access_token)
    assert_oauth_error(as_refresh, 400, "invalid_grant")
    as_bearer = await api.client.get("/users/me", headers=bearer(alice.refresh_token))
    assert as_bearer.status_code == 401
    assert as_bearer.headers["www-authenticate"] == INVALID_TOKEN
    # Neither mistake harmed the session.
    assert await works(api, alice.access_token)
    assert (await api.refresh(alice.refresh_token)).status_code == 200


TOKEN_ENDPOINT_ERRORS: dict[str, tuple[dict[str, str], int, str]] = {
    # Client grants need an authenticated (or, public, a named) client first.
    "client_credentials grant without a client": (
        {"grant_type": "client_credentials"},
        401,
        "invalid_client",
    ),
    "authorization_code grant without a client": (
        {"grant_type": "authorization_code", "code": "x"},
        401,
        "invalid_client",
    ),
    "unknown grant type": ({"grant_type": "urn:example:unknown"}, 400, "unsupported_grant_type"),
    "password grant without password": (
        {"grant_type": "password", "username": "someone"},
        400,
        "invalid_request",
    ),
    "omitted grant without password": ({"username": "someone"}, 400, "invalid_request"),
    "password grant without username": (
        {"grant_type": "password", "password": "whatever-1"},
        400,
        "invalid_request",
    ),
    "refresh grant without token": ({"grant_type": "refresh_token"}, 400, "invalid_request"),
    "unknown refresh token": (
        {"grant_type": "refresh_token", "refresh_token": "bsr_" + "A" * 43},
        400,
        "invalid_grant",
    ),
    "garbage refresh token": (
        {"grant_type": "refresh_token", "refresh_token": "garbage"},
        400,
        "invalid_grant",
    ),
}


async def test_token_endpoint_errors(api: Api) -> None:
    outcomes = {}
    for case, (form, _, _) in TOKEN_ENDPOINT_ERRORS.items():
        response = await api.client.post("/auth/token", data=form)
        body = response.json()
        outcomes[case] = (
            response.status_code,
            body.get("error"),
            response.headers.get("cache-control"),
            bool(body.get("error_description")),
        )
    assert outcomes == {
        case: (status, error, "no-store", True)
        for case, (_, status, error) in TOKEN_ENDPOINT_ERRORS.items()
    }


async def test_account_deleted_during_its_password_check_gets_invalid_grant(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The account is read before the hash and the session written after it; a deletion
    in between fails the session's foreign key, which must be an OAuth error, not a 500."""
    account = await api.account()
    verify = api.runtime.passwords.verify

    async def verify_then_delete(password: str, hashed: str | None) -> Verification:
        result = await verify(password, hashed)
        async with transaction(api.runtime.sessionmaker) as db:
            await db.execute(delete(User).where(User.id == account.id))
        return result

    monkeypatch.setattr(api.runtime.passwords, "verify", verify_then_delete)
    response = await api.login(account.username, account.password)
    assert_oauth_error(response, 400, "invalid_grant")
    async with transaction(api.runtime.sessionmaker) as db:
        sessions_left = await db.scalar(
            select(func.count()).select_from(AuthSession).where(AuthSession.user_id == account.id)
        )
    assert sessions_left == 0


# Logout and revocation


async def test_logout_ends_only_this_session(api: Api) -> None:
    alice = await api.account()
    other = await login(api, alice)
    response = await api.client.post("/auth/logout", headers=alice.headers)
    assert response.status_code == 204, response.text

    assert not await works(api, alice.access_token)
    assert_oauth_error(await api.refresh(alice.refresh_token), 400, "invalid_grant")
    assert await works(api, other["access_token"])
    assert (await api.refresh(other["refresh_token"])).status_code == 200
    again = await api.client.post("/auth/logout", headers=alice.headers)
    assert again.status_code == 401


async def test_logout_all_ends_every_session_of_the_user(api: Api) -> None:
    alice = await api.account()
    other = await login(api, alice)
    bob = await api.account()
    response = await api.client.post("/auth/logout-all", headers=alice.headers)
    assert response.status_code == 204, response.text

    for tokens in (
        {"access_token": alice.access_token, "refresh_token": alice.refresh_token},
        other,
    ):
        assert not await works(api, tokens["access_token"])
        assert_oauth_error(await api.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    assert await works(api, bob.access_token)
    # A new login starts afresh.
    assert await works(api, (await login(api, alice))["access_token"])


@pytest.mark.parametrize(
    "which, hint",
    [
        pytest.param("refresh", "refresh_token", id="refresh-token"),
        pytest.param("refresh", "access_token", id="refresh-token-wrong-hint"),
        pytest.param("access", None, id="access-token"),
    ],
)
async def test_revoke_ends_the_tokens_session(api: Api, which: str, hint: str | None) -> None:
    alice = await api.account()
    other = await login(api, alice)
    form = {"token": alice.refresh_token if which == "refresh" else alice.access_token}
    if hint is not None:
        form["token_type_hint"] = hint
    response = await api.client.post("/auth/revoke", data=form)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"

    assert not await works(api, alice.access_token)
    assert_oauth_error(await api.refresh(alice.refresh_token), 400, "invalid_grant")
    assert await works(api, other["access_token"])
    # Revoking again is still a 200.
    assert (await api.client.post("/auth/revoke", data=form)).status_code == 200


async def test_revoke_answers_200_whatever_the_token(api: Api) -> None:
    alice = await api.account()
    garbage = [
        "garbage",
        "bsr_" + "A" * 43,
        "bst_" + "A" * 43,
        "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.",
        alice.access_token[:-4] + "AAAA",
        "x" * 4000,
    ]
    statuses = [
        (await api.client.post("/auth/revoke", data={"token": token})).status_code
        for token in garbage
    ]
    assert statuses == [200] * len(garbage)
    assert await works(api, alice.access_token)
    missing = await api.client.post("/auth/revoke", data={})
    assert_oauth_error(missing, 400, "invalid_request")


# Listing and ending sessions


async def test_list_sessions(api: Api) -> None:
    alice = await api.account()
    phone = await login(api, alice, user_agent="phone/1.0")
    laptop = await login(api, alice, user_agent="laptop/2.0")
    bob = await api.account()
    await api.client.post("/auth/logout", headers=alice.headers)  # ended: not listed

    response = await api.client.get("/auth/sessions", headers=bearer(laptop["access_token"]))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert all(set(item) == SESSION_FIELDS for item in page["items"])
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {session_id(phone["access_token"]), session_id(laptop["access_token"])}
    laptop_session = by_id[session_id(laptop["access_token"])]
    phone_session = by_id[session_id(phone["access_token"])]
    assert laptop_session["current"] is True and phone_session["current"] is False
    assert laptop_session["user_agent"] == "laptop/2.0"
    assert phone_session["user_agent"] == "phone/1.0"
    assert {item["ip"] for item in page["items"]} == {CLIENT_IP}
    assert session_id(bob.access_token) not in by_id

    from_phone = (
        await api.client.get("/auth/sessions", headers=bearer(phone["access_token"]))
    ).json()
    assert [item["id"] for item in from_phone["items"] if item["current"]] == [phone_session["id"]]


async def test_delete_own_session(api: Api) -> None:
    alice = await api.account()
    other = await login(api, alice)
    other_id = session_id(other["access_token"])
    response = await api.client.delete(f"/auth/sessions/{other_id}", headers=alice.headers)
    assert response.status_code == 204, response.text

    assert not await works(api, other["access_token"])
    assert_oauth_error(await api.refresh(other["refresh_token"]), 400, "invalid_grant")
    assert await works(api, alice.access_token)
    listed = (await api.client.get("/auth/sessions", headers=alice.headers)).json()
    assert [item["id"] for item in listed["items"]] == [session_id(alice.access_token)]

    # Ending the caller's own session works too.
    mine = session_id(alice.access_token)
    assert (
        await api.client.delete(f"/auth/sessions/{mine}", headers=alice.headers)
    ).status_code == 204
    assert not await works(api, alice.access_token)


async def test_someone_elses_session_does_not_exist_for_you(api: Api) -> None:
    alice = await api.account()
    bob = await api.account()
    for target in (session_id(bob.access_token), "00000000-0000-0000-0000-000000000000"):
        response = await api.client.delete(f"/auth/sessions/{target}", headers=alice.headers)
        assert response.status_code == 404, target
    assert await works(api, bob.access_token)
    assert (await api.refresh(bob.refresh_token)).status_code == 200


# Purging ended sessions


async def test_purge_removes_ended_sessions_and_expired_tokens(api: Api) -> None:
    alice = await api.account()  # stays active
    revoked = await login(api, alice)
    expired = await login(api, alice)
    rotated = (await api.refresh(alice.refresh_token)).json()  # alice's first token is spent
    revoked_id = session_id(revoked["access_token"])
    expired_id = session_id(expired["access_token"])
    active_id = session_id(alice.access_token)
    past = datetime.now(UTC) - timedelta(minutes=1)

    async with transaction(api.runtime.sessionmaker) as db:
        await db.execute(
            update(AuthSession).where(AuthSession.id == revoked_id).values(revoked_at=past)
        )
        await db.execute(
            update(AuthSession).where(AuthSession.id == expired_id).values(expires_at=past)
        )
        # The spent refresh token of the active session has also run out.
        await db.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id == active_id, RefreshToken.used_at.is_not(None))
            .values(expires_at=past)
        )

    async with transaction(api.runtime.sessionmaker) as db:
        purged = await purge_expired(db)
    assert purged >= 3

    async with transaction(api.runtime.sessionmaker) as db:
        sessions = set(await db.scalars(select(AuthSession.id)))
        tokens = list(await db.execute(select(RefreshToken.session_id, RefreshToken.used_at)))
    assert active_id in sessions
    assert revoked_id not in sessions and expired_id not in sessions
    assert [(row.session_id, row.used_at) for row in tokens] == [(active_id, None)]

    # The active session is unharmed.
    assert await works(api, rotated["access_token"])
    assert (await api.refresh(rotated["refresh_token"])).status_code == 200


async def test_every_token_endpoint_error_carries_oauth_fields(api: Api) -> None:
    """RFC 6749 section 5.2 fields on 403 (disabled) and 429 (throttled) answers too."""
    admin = await api.account("admin")
    user = await api.account()
    await api.client.patch(f"/admin/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    disabled = await api.login(user.username)
    assert disabled.status_code == 403
    assert disabled.json()["error"] == "invalid_grant" and disabled.json()["error_description"]
    for _ in range(5):
        await api.login(admin.username, "Wrong-password-1")
    throttled = await api.login(admin.username, "Wrong-password-1")
    assert throttled.status_code == 429
    assert throttled.json()["error"] == "invalid_grant"
    assert throttled.headers["cache-control"] == "no-store"


async def test_revoke_answers_200_for_any_token(api: Api) -> None:
    for token in ("garbage", "bsr_\x00nul", "a" * 4000):
        response = await api.client.post("/auth/revoke", data={"token": token})
        assert response.status_code == 200
