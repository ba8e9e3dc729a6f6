"""Brute-force limits: per account and IP, per IP, shared through Redis when configured."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bastion.app import create_app
from bastion.runtime import build_runtime
from conftest import PASSWORD, Api

# The contract's defaults apply: 5 failures per account and IP in 15 min, 30 per IP a minute.


async def _fail(api: Api, username: str, times: int) -> list[int]:
    return [(await api.login(username, "wrong-password-x")).status_code for _ in range(times)]


async def test_sixth_failure_is_throttled_but_others_still_log_in(api: Api) -> None:
    alice = await api.account()
    bob = await api.account()
    assert await _fail(api, alice.username, 5) == [401] * 5
    throttled = await api.login(alice.username, "wrong-password-x")
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["retry-after"])
    assert 1 <= retry_after <= 900
    # While throttled, even the correct password is refused.
    assert (await api.login(alice.username, PASSWORD)).status_code == 429
    # Another account from the same IP is unaffected.
    assert (await api.login(bob.username, PASSWORD)).status_code == 200


async def test_unknown_usernames_are_throttled_like_known_ones(api: Api) -> None:
    alice = await api.account()
    known = await _fail(api, alice.username, 6)
    unknown = await _fail(api, "ghost-user-never-registered", 6)
    assert known == unknown == [401] * 5 + [429]


async def test_counter_ignores_username_case(api: Api) -> None:
    alice = await api.account()
    spellings = [alice.username.upper(), alice.username, alice.username.title()]
    codes = [
        (await api.login(spellings[i % 3], "wrong-password-x")).status_code for i in range(6)
    ]
    assert codes == [401] * 5 + [429]


async def test_username_and_email_of_one_account_share_one_counter(api: Api) -> None:
    """Alternating between the account's username and its email buys no extra guesses."""
    alice, bob = await api.account(), await api.account()
    names = [alice.username, alice.email, alice.email.upper(), alice.username, alice.email]
    codes = [(await api.login(name, "wrong-password-x")).status_code for name in names]
    assert codes == [401] * 5
    assert (await api.login(alice.username, "wrong-password-x")).status_code == 429
    assert (await api.login(alice.email, PASSWORD)).status_code == 429
    assert (await api.login(bob.email, PASSWORD)).status_code == 200


async def test_success_by_email_clears_the_username_counter(api: Api) -> None:
    alice = await api.account()
    await _fail(api, alice.username, 4)
    assert (await api.login(alice.email, PASSWORD)).status_code == 200
    assert await _fail(api, alice.username, 5) == [401] * 5


async def test_unknown_identifiers_are_counted_by_their_canonical_form(api: Api) -> None:
    """Unknown names and emails: one counter per canonical identifier, throttled after the
    same 5 failures as an account, with the same answers."""
    alice = await api.account()
    known = await _fail(api, alice.email, 6)
    ghost = "ghost.never@example.com"
    spellings = [ghost, ghost.upper(), f" {ghost}", ghost.title(), ghost, ghost]
    unknown = [(await api.login(name, "wrong-password-x")).status_code for name in spellings]
    assert known == unknown == [401] * 5 + [429]
    other = await api.login("ghost.other@example.com", "wrong-password-x")
    assert other.status_code == 401  # another unknown identifier counts on its own


async def test_success_clears_the_account_counter(api: Api) -> None:
    alice = await api.account()
    await _fail(api, alice.username, 4)
    assert (await api.login(alice.username, PASSWORD)).status_code == 200
    assert await _fail(api, alice.username, 5) == [401] * 5


@pytest.mark.parametrize("settings_overrides", [{"basic_auth": True}])
async def test_basic_auth_failures_count_toward_the_same_limit(api: Api) -> None:
    alice = await api.account()
    for _ in range(5):
        response = await api.client.get("/users/me", auth=(alice.username, "wrong-password-x"))
        assert response.status_code == 401
    assert (await api.login(alice.username, PASSWORD)).status_code == 429
    basic = await api.client.get("/users/me", auth=(alice.username, PASSWORD))
    assert basic.status_code == 429 and "retry-after" in basic.headers


@pytest.mark.parametrize(
    "settings_overrides",
    [{"login_max_failures": 100, "ip_max_failures": 3, "ip_failure_window": 60}],
)
async def test_ip_limit_spans_usernames(api: Api, settings_overrides: dict[str, Any]) -> None:
    codes = [
        (await api.login(f"someone{i}", "wrong-password-x")).status_code for i in range(4)
    ]
    assert codes == [401, 401, 401, 429]


@pytest.mark.parametrize(
    "settings_overrides", [{"login_max_failures": 2, "login_failure_window": 1}]
)
async def test_window_expiry_restores_access(
    api: Api, settings_overrides: dict[str, Any]
) -> None:
    import asyncio

    alice = await api.account()
    assert await _fail(api, alice.username, 3) == [401, 401, 429]
    await asyncio.sleep(1.2)
    assert (await api.login(alice.username, PASSWORD)).status_code == 200


async def test_throttled_logins_are_audited(api: Api) -> None:
    admin = await api.account("admin")
    await _fail(api, "victim-name", 6)
    events = await api.client.get(
        "/admin/audit", params={"event": "login_throttled"}, headers=admin.headers
    )
    assert events.status_code == 200
    assert events.json()["total"] == 1
    failed = await api.client.get(
        "/admin/audit", params={"event": "login_failed"}, headers=admin.headers
    )
    assert failed.json()["total"] == 5


@pytest.mark.redis
async def test_redis_counters_are_shared_between_instances(
    settings: Any, redis_url: str, api: Api
) -> None:
    """Two app instances on one Redis: failures on A and B add up."""
    import redis.asyncio as redis

    await redis.from_url(redis_url).flushdb()
    shared = type(settings)(
        database_url=settings.database_url, redis_url=redis_url, _env_file=None
    )
    alice = await api.account()
    first, second = await build_runtime(shared), await build_runtime(shared)
    try:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(runtime=rt), client=("198.51.100.9", 1)),
                base_url="http://testserver",
            )
            for rt in (first, second)
        ]
        codes = []
        for i in range(6):
            response = await clients[i % 2].post(
                "/auth/token", data={"username": alice.username, "password": "wrong-password-x"}
            )
            codes.append(response.status_code)
        assert codes == [401] * 5 + [429]
        for c in clients:
            await c.aclose()
    finally:
        await first.close()
        await second.close()
        await redis.from_url(redis_url).flushdb()
