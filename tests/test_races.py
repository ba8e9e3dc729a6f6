"""Races that must have exactly one winner, or no loser after an acknowledgement."""

from __future__ import annotations

import asyncio

import pytest

from conftest import PASSWORD, Api


# The race, not the sign-up quota (10 an hour per IP, tested in test_accounts.py).
@pytest.mark.parametrize("settings_overrides", [{"register_max_per_ip": 100}])
async def test_fifty_concurrent_registrations_of_one_username(api: Api) -> None:
    responses = await asyncio.gather(
        *(api.register("contested", email=f"contested{i}@example.com") for i in range(50))
    )
    codes = sorted(response.status_code for response in responses)
    assert codes == [201] + [409] * 49


async def test_no_use_of_an_api_key_succeeds_after_its_revocation_is_acknowledged(
    api: Api,
) -> None:
    alice = await api.account()
    key = await api.api_key(alice, ["me"])
    key_id = (await api.client.get("/users/me/api-keys", headers=alice.headers)).json()[
        "items"
    ][0]["id"]
    headers = {"X-API-Key": key}
    assert (await api.client.get("/users/me", headers=headers)).status_code == 200

    async def use_until_refused() -> list[int]:
        codes: list[int] = []
        while not codes or codes[-1] == 200:
            codes.append((await api.client.get("/users/me", headers=headers)).status_code)
            await asyncio.sleep(0)
        return codes

    users = [asyncio.ensure_future(use_until_refused()) for _ in range(5)]
    await asyncio.sleep(0.01)
    revoked = await api.client.delete(f"/users/me/api-keys/{key_id}", headers=alice.headers)
    assert revoked.status_code == 204
    after = await asyncio.gather(
        *(api.client.get("/users/me", headers=headers) for _ in range(10))
    )
    assert {response.status_code for response in after} == {401}
    for codes in await asyncio.gather(*users):
        assert set(codes) <= {200, 401} and codes[-1] == 401


async def test_concurrent_logins_of_one_user_each_get_their_own_session(api: Api) -> None:
    alice = await api.account()
    responses = await asyncio.gather(*(api.login(alice.username, PASSWORD) for _ in range(8)))
    assert [response.status_code for response in responses] == [200] * 8
    sessions = {response.json()["refresh_token"] for response in responses}
    assert len(sessions) == 8


async def test_state_loads_are_shared_but_never_outlive_an_invalidation() -> None:
    """Concurrent misses share one load; a caller after an invalidation gets a fresh one."""
    from bastion.services.auth_state import TtlCache

    cache: TtlCache[str] = TtlCache(ttl=60)
    loads: list[str] = []
    release = asyncio.Event()

    async def load(key: str) -> str:
        loads.append(key)
        version = f"v{len(loads)}"
        await release.wait()
        return version

    first = [asyncio.ensure_future(cache.get("s", load)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert loads == ["s"]  # five misses, one load
    cache.invalidate("s")  # e.g. a logout commits while that load runs
    after = asyncio.ensure_future(cache.get("s", load))
    await asyncio.sleep(0.01)
    release.set()
    assert {await task for task in first} == {"v1"}
    assert await after == "v2"
    assert await cache.get("s", load) == "v2"  # v1 was never stored
