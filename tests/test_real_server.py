"""Against a real ``bastion serve`` on loopback: what only a real socket can show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from servers import Server, login, register, running_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as running:
        yield running


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, BASTION_TRUSTED_PROXIES="127.0.0.1/32") as running:
        yield running


def _fail_login(base: str, username: str, forwarded_for: str) -> int:
    response = httpx.post(
        f"{base}/auth/token",
        data={"username": username, "password": "wrong-password-x"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def test_forged_forwarded_for_from_untrusted_peer_changes_nothing(server: Server) -> None:
    """uvicorn would trust X-Forwarded-For from 127.0.0.1; bastion serve must not."""
    register(server.base, "target")
    codes = [_fail_login(server.base, "target", f"10.0.0.{i}") for i in range(6)]
    assert codes == [401] * 5 + [429]


def test_forwarded_for_from_a_trusted_proxy_is_the_client(proxied_server: Server) -> None:
    base = proxied_server.base
    register(base, "target")
    codes = [_fail_login(base, "target", f"192.0.2.{i}") for i in range(6)]
    assert codes == [401] * 6  # six different clients, one failure each
    same = [_fail_login(base, "target", "192.0.2.200") for _ in range(6)]
    assert same == [401] * 5 + [429]


@pytest.fixture
def shared_backends(request: pytest.FixtureRequest, redis_url: str) -> dict[str, str]:
    """PostgreSQL and Redis for several real servers; runs when both test URLs are set."""
    import redis

    from conftest import _truncate_postgres

    database = request.getfixturevalue("postgres_migrated")
    asyncio.run(_truncate_postgres(database))
    redis.Redis.from_url(redis_url).flushdb()
    return {
        "BASTION_DATABASE_URL": database,
        "BASTION_REDIS_URL": redis_url,
        # A long cache TTL: only the Redis fan-out can make B see A's logout in time.
        "BASTION_STATE_CACHE_TTL": "30",
        # One service behind two addresses: without it each names its own (the served one).
        "BASTION_ISSUER": "http://bastion.test",
    }


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_share_tokens_logout_and_throttling(
    tmp_path: Path, shared_backends: dict[str, str]
) -> None:
    with (
        running_server(tmp_path / "a", **shared_backends) as a,
        running_server(tmp_path / "b", **shared_backends) as b,
    ):
        register(a.base, "roamer")
        headers = {"Authorization": f"Bearer {login(a.base, 'roamer')['access_token']}"}
        assert httpx.get(f"{b.base}/users/me", headers=headers).status_code == 200

        assert httpx.post(f"{a.base}/auth/logout", headers=headers).status_code == 204
        deadline = time.monotonic() + 1.0
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = httpx.get(f"{b.base}/users/me", headers=headers).status_code
        assert status == 401

        codes = [_fail_login((a, b)[i % 2].base, "roamer", "x") for i in range(6)]
        assert codes == [401] * 5 + [429]


def test_workers_share_signing_keys(tmp_path: Path) -> None:
    """``--workers 2``: any worker accepts a token issued by any other."""
    with running_server(tmp_path, workers=2, BASTION_METRICS="true") as server:
        register(server.base, "multi")
        tokens = [login(server.base, "multi")["access_token"] for _ in range(4)]
        for token in tokens:
            for _ in range(4):  # new connections spread over the workers
                me = httpx.get(
                    f"{server.base}/users/me", headers={"Authorization": f"Bearer {token}"}
                )
                assert me.status_code == 200
        assert len(httpx.get(f"{server.base}/.well-known/jwks.json").json()["keys"]) == 1
        metrics = httpx.get(f"{server.base}/metrics").text
        assert 'bastion_logins_total{outcome="succeeded"} 4.0' in metrics
