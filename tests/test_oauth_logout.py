"""RP-initiated logout (``GET /logout``) ends the sessions the browser session's codes opened:
a refresh token obtained through /authorize stops working, others do not."""

from __future__ import annotations

import asyncio
from typing import Any

import jwt
from sqlalchemy import inspect

from bastion.db import migrate
from bastion.db.engine import create_engine
from conftest import Api
from oauth_flow import query_of
from test_oauth_authorize import Flow, new_flow


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _use_cookies(api: Api, cookies: dict[str, str]) -> None:
    """Stand in for another browser: the client's cookie jar becomes ``cookies``."""
    api.client.cookies.clear()
    for name, value in cookies.items():
        api.client.cookies.set(name, value)


async def _tokens(flow: Flow) -> dict[str, Any]:
    answer = await flow.redeem(await flow.code())
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def _refreshes(flow: Flow, tokens: dict[str, Any]) -> bool:
    """Whether the refresh token still works (a working one is replaced by its successor)."""
    answer = await flow.api.refresh(tokens["refresh_token"], client_id=flow.client["client_id"])
    if answer.status_code == 200:
        tokens.update(answer.json())
        return True
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
    return False


async def _userinfo(flow: Flow, tokens: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return (await flow.api.client.get("/userinfo", headers=headers)).status_code


async def test_logout_ends_the_sessions_its_codes_opened(api: Api) -> None:
    flow = await new_flow(api)
    here = await _tokens(flow)
    first_browser = dict(api.client.cookies)
    # The same user signed in in another browser, and with the password grant.
    api.client.cookies.clear()
    there = await _tokens(flow)
    password = (await api.login(flow.user.username)).json()
    api.client.cookies.clear()
    # A logout without the browser's cookie ends nothing.
    assert (await api.client.get("/logout")).status_code == 200
    assert await _refreshes(flow, here)
    _use_cookies(api, first_browser)
    bye = await api.client.get("/logout", params={"id_token_hint": here["id_token"]})
    assert bye.status_code == 200 and "signed out" in bye.text
    assert not await _refreshes(flow, here)
    assert await _userinfo(flow, here) == 401
    # The other browser's sign-in and the password login go on.
    assert await _refreshes(flow, there) and await _userinfo(flow, there) == 200
    assert (await api.refresh(password["refresh_token"])).status_code == 200


async def test_signing_in_again_keeps_one_browser_session_to_log_out_of(api: Api) -> None:
    flow = await new_flow(api)
    first = await _tokens(flow)
    cookie = api.client.cookies["bastion-session"]
    page = await flow.authorize(prompt="login")
    assert page.status_code == 200 and 'value="login"' in page.text
    answer = await flow.login(page)
    assert answer.status_code == 303, answer.text
    assert api.client.cookies["bastion-session"] != cookie  # a new cookie for the new sign-in
    second = await flow.redeem(query_of(answer.headers["location"])["code"])
    claims = [_claims(tokens["id_token"]) for tokens in (first, second.json())]
    assert claims[0]["sid"] == claims[1]["sid"] and claims[0]["auth_time"] <= claims[1]["auth_time"]
    # The old cookie signs in no more; the logout ends both sign-ins' sessions.
    current = dict(api.client.cookies)
    _use_cookies(api, {"bastion-session": cookie})
    assert 'value="login"' in (await flow.authorize()).text
    _use_cookies(api, current)
    assert (await api.client.get("/logout")).status_code == 200
    assert not await _refreshes(flow, first)
    assert not await _refreshes(flow, second.json())


async def test_a_code_not_redeemed_before_logout_is_refused(api: Api) -> None:
    flow = await new_flow(api)
    code = await flow.code()
    assert (await api.client.get("/logout")).status_code == 200
    late = await flow.redeem(code)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


async def test_logout_is_audited_like_the_other_logouts(api: Api) -> None:
    flow = await new_flow(api)
    await _tokens(flow)
    await _tokens(flow)  # a second client sign-in in the same browser session
    admin = await api.account("admin")
    assert (await api.client.get("/logout")).status_code == 200
    events = await api.client.get(
        "/admin/audit", params={"event": "logout", "user_id": flow.user.id},
        headers=admin.headers,
    )
    (event,) = events.json()["items"]
    assert event["ip"] == "203.0.113.7"
    assert event["detail"]["via"] == "end_session" and event["detail"]["sessions"] == 2


async def test_revision_0005_downgrades_and_upgrades(database_url: str) -> None:
    """The columns these features added are a static, reversible revision."""
    added = {
        ("auth_sessions", "browser_session_id"),
        ("authorization_codes", "resource"),
        ("oauth_consents", "updated_at"),
    }

    async def columns() -> set[tuple[str, str]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                def read(sync: Any) -> set[tuple[str, str]]:
                    found = inspect(sync)
                    return {
                        (table, column["name"])
                        for table in {table for table, _ in added}
                        for column in found.get_columns(table)
                    }

                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    assert added <= await columns()
    await asyncio.to_thread(migrate.downgrade, database_url, "0004")
    assert not added & await columns()
    await asyncio.to_thread(migrate.upgrade, database_url)
    assert added <= await columns()
