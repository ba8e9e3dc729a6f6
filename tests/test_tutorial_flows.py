"""The scenarios every FastAPI auth tutorial promises, done for real."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conftest import PASSWORD, Api


async def test_register_then_log_in_then_read_me(api: Api) -> None:
    registered = await api.register("alice", full_name="Alice Example")
    assert registered.status_code == 201
    user = registered.json()
    assert user["roles"] == ["user"] and user["is_active"] is True
    assert "password" not in registered.text and "hash" not in registered.text

    token = await api.login("alice")
    assert token.status_code == 200
    body = token.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "me todos:read todos:write"
    assert token.headers["cache-control"] == "no-store"
    assert token.headers["pragma"] == "no-cache"

    me = await api.client.get(
        "/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == user


async def test_log_in_then_read_your_todos(api: Api) -> None:
    alice = await api.account()
    created = await api.client.post("/todos", json={"title": "buy milk"}, headers=alice.headers)
    assert created.status_code == 201
    listed = await api.client.get("/todos", headers=alice.headers)
    assert listed.status_code == 200
    page = listed.json()
    assert page["total"] == 1 and page["limit"] == 50 and page["offset"] == 0
    assert page["items"][0]["title"] == "buy milk"
    assert page["items"][0]["owner_id"] == alice.id


async def test_wrong_password_is_401_invalid_grant(api: Api) -> None:
    alice = await api.account()
    response = await api.login(alice.username, "not-the-password")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "invalid_grant"


async def test_unknown_user_gets_the_same_answer_as_wrong_password(api: Api) -> None:
    alice = await api.account()
    wrong = await api.login(alice.username, "not-the-password")
    unknown = await api.login("nobody-here", "not-the-password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")


async def test_no_token_is_401_with_the_bearer_challenge(api: Api) -> None:
    response = await api.client.get("/users/me")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == ["Bearer"]


async def test_login_by_email_ignoring_case(api: Api) -> None:
    alice = await api.account()
    response = await api.login(alice.email.upper())
    assert response.status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"basic_auth": True}])
async def test_http_basic_reads_me(api: Api) -> None:
    alice = await api.account()
    response = await api.client.get("/users/me", auth=(alice.username, PASSWORD))
    assert response.status_code == 200
    assert response.json()["username"] == alice.username
    wrong = await api.client.get("/users/me", auth=(alice.username, "nope-nope-nope"))
    assert wrong.status_code == 401
    assert 'Basic realm="bastion"' in wrong.headers.get_list("www-authenticate")


async def test_http_basic_is_off_by_default(api: Api) -> None:
    alice = await api.account()
    response = await api.client.get("/users/me", auth=(alice.username, PASSWORD))
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == ["Bearer"]


@pytest.mark.parametrize("settings_overrides", [{}, {"basic_auth": True}], ids=["off", "on"])
async def test_only_a_basic_request_is_offered_basic(
    api: Api, settings_overrides: dict[str, Any]
) -> None:
    """A Basic challenge makes a browser pop its sign-in dialog: never to other requests."""
    sent = {
        "nothing": {},
        "api key": {"X-API-Key": "bst_" + "A" * 43},
        "another scheme": {"Authorization": "Digest username=alice"},
        "basic": {"Authorization": "Basic " + base64.b64encode(b"alice:wrong-one").decode()},
    }
    challenges = {}
    for name, headers in sent.items():
        response = await api.client.get("/users/me", headers=headers)
        assert response.status_code == 401, (name, response.text)
        challenges[name] = response.headers.get_list("www-authenticate")
    basic = ["Bearer", 'Basic realm="bastion"'] if settings_overrides else ["Bearer"]
    assert challenges == {"nothing": ["Bearer"], "api key": ["Bearer"],
                          "another scheme": ["Bearer"], "basic": basic}
