"""Password reset by a link from a real SMTP delivery, and passwords set by an administrator."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from bastion.db.engine import transaction
from bastion.db.models import OneTimeToken, User, utcnow
from bastion.runtime import Runtime
from bastion.services.mailer import Mailer
from conftest import PASSWORD, Account, Api
from smtp_inbox import Inbox, smtp_settings

NEW_PASSWORD = "copper-Meadow-57-quiver"
ROUNDS = 20


@pytest.fixture
def settings_overrides(smtp_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    return smtp_settings(smtp_url, request)


UNLIMITED = pytest.mark.parametrize(
    "settings_overrides",
    [{"mail_max_per_address": 1000, "password_reset_max_per_ip": 1000}],
    indirect=True,
)


async def _request(api: Api, email: str) -> httpx.Response:
    return await api.client.post("/auth/password-reset/request", json={"email": email})


async def _reset(api: Api, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await api.client.post(
        "/auth/password-reset", json={"token": token, "new_password": password}
    )


async def _mailed_token(api: Api, inbox: Inbox, runtime: Runtime, account: Account) -> str:
    response = await _request(api, account.email.upper())  # any case names the account
    assert response.status_code == 202
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    return inbox.token_for(account.email)


async def test_a_mailed_link_resets_once_and_only_once(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    token = await _mailed_token(api, inbox, runtime, account)
    assert token.startswith("bsp_")
    assert (await _reset(api, token)).status_code == 204
    assert (await api.login(account.username)).status_code == 401
    assert (await api.login(account.username, NEW_PASSWORD)).status_code == 200
    again = await _reset(api, token, "another-Fine-88-password")
    assert again.status_code == 400
    assert (await api.login(account.username, NEW_PASSWORD)).status_code == 200


async def test_a_reset_ends_every_session_and_is_audited(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    assert (await api.client.get("/users/me", headers=account.headers)).status_code == 200
    token = await _mailed_token(api, inbox, runtime, account)
    assert (await _reset(api, token)).status_code == 204
    assert (await api.client.get("/users/me", headers=account.headers)).status_code == 401
    assert (await api.refresh(account.refresh_token)).status_code == 400
    admin = await api.account("admin")
    events = (
        await api.client.get(f"/admin/audit?user_id={account.id}", headers=admin.headers)
    ).json()["items"]
    assert {"password_reset_requested", "password_reset"} <= {e["event"] for e in events}
    assert all(token not in str(e["detail"]) for e in events)


async def test_a_reset_proves_the_address(api: Api, inbox: Inbox, runtime: Runtime) -> None:
    account = await api.account()
    token = await _mailed_token(api, inbox, runtime, account)
    await _reset(api, token)
    me = await api.client.get("/users/me", auth=(account.username, NEW_PASSWORD))
    assert me.json()["email_verified"] is True


async def test_one_reset_voids_the_other_links(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    first = await _mailed_token(api, inbox, runtime, account)
    second = await _mailed_token(api, inbox, runtime, account)
    assert first != second
    assert (await _reset(api, second)).status_code == 204
    assert (await _reset(api, first)).status_code == 400


async def test_a_weak_password_is_refused_and_the_link_still_works(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    token = await _mailed_token(api, inbox, runtime, account)
    weak = await _reset(api, token, "password")
    assert weak.status_code == 422
    assert (await _reset(api, token, account.username)).status_code == 422
    assert (await _reset(api, token)).status_code == 204


async def test_an_expired_link_is_refused(api: Api, inbox: Inbox, runtime: Runtime) -> None:
    account = await api.account()
    token = await _mailed_token(api, inbox, runtime, account)
    async with transaction(runtime.sessionmaker) as db:
        expires = await db.scalar(select(OneTimeToken.expires_at))
        assert expires is not None
        lifetime = (expires - utcnow()).total_seconds()
        await db.execute(update(OneTimeToken).values(expires_at=utcnow()))
    assert 1790 <= lifetime <= 1800  # 30 minutes
    assert (await _reset(api, token)).status_code == 400


@pytest.mark.parametrize(
    "token", ["bsp_unknown", "bsv_" + "a" * 43, "bsr_" + "a" * 43, "nonsense"]
)
async def test_unknown_or_foreign_tokens_reset_nothing(api: Api, token: str) -> None:
    response = await _reset(api, token)
    assert response.status_code == 400


async def test_a_verification_link_cannot_reset(api: Api, inbox: Inbox, runtime: Runtime) -> None:
    username = api.unique("cross")
    await api.register(username)
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    verification = inbox.token_for(f"{username}@example.com")
    assert (await _reset(api, verification)).status_code == 400


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    account = await api.account()
    known = await _request(api, account.email)
    unknown = await _request(api, "nobody-here@example.com")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202
    assert dict(known.headers).keys() == dict(unknown.headers).keys()
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    assert [m["To"] for m in inbox.messages] == [account.email]


async def _median_ratio(api: Api, known: str, mailer: Mailer) -> float:
    """Median time of ``ROUNDS`` unknown-address requests over that of as many for ``known``."""
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for round_ in range(ROUNDS):
        for kind in ("known", "unknown") if round_ % 2 else ("unknown", "known"):
            address = known if kind == "known" else f"nobody{round_}@example.com"
            started = time.perf_counter()
            response = await _request(api, address)
            times[kind].append(time.perf_counter() - started)
            assert response.status_code == 202
            await mailer.drain()
            await asyncio.sleep(0.03)  # the server thread closes the connection
    return statistics.median(times["unknown"]) / statistics.median(times["known"])


@UNLIMITED
async def test_an_unknown_address_takes_the_same_time(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    """The request path does the same work for both; the mail goes out after the response.

    Each request is timed alone: the delivery a known address causes runs in the
    background afterwards and is waited for between requests, untimed (the test's
    SMTP server is a thread of this process and would otherwise compete for the
    interpreter with the next request), so it cannot land in another measurement.
    On a shared machine one run of 40 requests can be disturbed by the host, so a
    run outside the bounds is taken again, twice at most: a real difference fails
    all three.
    """
    account = await api.account()
    assert runtime.account_kit is not None
    mailer = runtime.account_kit.mailer
    for address in (account.email, "warm-up@example.com"):  # warm both paths up
        await _request(api, address)
    ratios = []
    for _ in range(3):
        ratios.append(await _median_ratio(api, account.email, mailer))
        if 0.8 <= ratios[-1] <= 1.25:
            break
    assert 0.8 <= ratios[-1] <= 1.25, f"unknown/known median ratios {ratios}"
    assert len(inbox.to(account.email)) == 1 + ROUNDS * len(ratios)


async def test_requests_are_limited_per_address(api: Api) -> None:
    statuses = [(await _request(api, "target@example.com")).status_code for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    throttled = await _request(api, "TARGET@example.com")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert (await _request(api, "other@example.com")).status_code == 202


@pytest.mark.parametrize(
    "settings_overrides", [{"password_reset_max_per_ip": 3}], indirect=True
)
async def test_requests_are_limited_per_ip(api: Api) -> None:
    statuses = [(await _request(api, f"a{n}@example.com")).status_code for n in range(4)]
    assert statuses == [202, 202, 202, 429]


async def test_an_admin_sets_a_password(api: Api) -> None:
    admin = await api.account("admin")
    account = await api.account()
    weak = await api.client.patch(
        f"/admin/users/{account.id}", json={"password": "password"}, headers=admin.headers
    )
    assert weak.status_code == 422
    done = await api.client.patch(
        f"/admin/users/{account.id}", json={"password": NEW_PASSWORD}, headers=admin.headers
    )
    assert done.status_code == 200
    assert "password" not in done.text.lower()
    assert (await api.client.get("/users/me", headers=account.headers)).status_code == 401
    assert (await api.login(account.username, NEW_PASSWORD)).status_code == 200
    events = (
        await api.client.get(
            f"/admin/audit?user_id={account.id}&event=password_changed", headers=admin.headers
        )
    ).json()["items"]
    assert events[0]["detail"]["by"] == admin.id


async def test_setting_a_password_needs_users_write(api: Api) -> None:
    moderator = await api.account("moderator")
    account = await api.account()
    response = await api.client.patch(
        f"/admin/users/{account.id}", json={"password": NEW_PASSWORD}, headers=moderator.headers
    )
    assert response.status_code == 403
    async with transaction(api.runtime.sessionmaker) as db:
        user = await db.get(User, account.id)
        assert user is not None
        assert (await api.runtime.passwords.verify(PASSWORD, user.hashed_password)).valid


async def test_used_and_expired_tokens_are_purged(
    api: Api, inbox: Inbox, runtime: Runtime
) -> None:
    from datetime import timedelta

    from bastion.services import maintenance

    account = await api.account()
    used = await _mailed_token(api, inbox, runtime, account)
    await _reset(api, used)
    await _mailed_token(api, inbox, runtime, account)  # live: kept
    result = await maintenance.purge(runtime.sessionmaker, audit_retention_days=365)
    assert result.sessions_and_tokens >= 1
    async with transaction(runtime.sessionmaker) as db:
        left = list(await db.scalars(select(OneTimeToken)))
        assert len(left) == 1 and left[0].used_at is None
        from bastion.services import one_time_tokens

        later = utcnow() + timedelta(hours=1)
        assert await one_time_tokens.purge_expired(db, now=later) == 1
