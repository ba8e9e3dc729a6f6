"""Against a real ``bastion serve`` on loopback: what only a real socket can show."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow
PASSWORD = "violet-Harbor-91-lantern"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(tmp_path: Path, **env: str) -> Iterator[str]:
    yield from serve_workers(tmp_path, 1, **env)


def serve_workers(tmp_path: Path, workers: int, **env: str) -> Iterator[str]:
    port = _free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    environment = {
        **inherited,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "BASTION_LOG_LEVEL": "warning",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(process.stderr.read().decode() if process.stderr else "no start")
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path)


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path, BASTION_TRUSTED_PROXIES="127.0.0.1/32")


def _register(base: str, username: str) -> None:
    response = httpx.post(
        f"{base}/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text


def _fail_login(base: str, username: str, forwarded_for: str) -> int:
    response = httpx.post(
        f"{base}/auth/token",
        data={"username": username, "password": "wrong-password-x"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def test_forged_forwarded_for_from_untrusted_peer_changes_nothing(server: str) -> None:
    """uvicorn would trust X-Forwarded-For from 127.0.0.1; bastion serve must not."""
    _register(server, "target")
    codes = [_fail_login(server, "target", f"10.0.0.{i}") for i in range(6)]
    assert codes == [401] * 5 + [429]


def test_forwarded_for_from_a_trusted_proxy_is_the_client(proxied_server: str) -> None:
    _register(proxied_server, "target")
    codes = [_fail_login(proxied_server, "target", f"192.0.2.{i}") for i in range(6)]
    assert codes == [401] * 6  # six different clients, one failure each
    same = [_fail_login(proxied_server, "target", "192.0.2.200") for _ in range(6)]
    assert same == [401] * 5 + [429]


@pytest.fixture
def shared_backends(request: pytest.FixtureRequest, redis_url: str) -> dict[str, str]:
    """PostgreSQL and Redis for several real servers; runs when both test URLs are set."""
    import asyncio

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
    }


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_share_tokens_logout_and_throttling(
    tmp_path: Path, shared_backends: dict[str, str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a_gen = serve(tmp_path / "a", **shared_backends)
    a = next(a_gen)
    b_gen = serve(tmp_path / "b", **shared_backends)
    b = next(b_gen)
    try:
        _register(a, "roamer")
        token = httpx.post(
            f"{a}/auth/token", data={"username": "roamer", "password": PASSWORD}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{b}/users/me", headers=headers).status_code == 200

        assert httpx.post(f"{a}/auth/logout", headers=headers).status_code == 204
        deadline = time.monotonic() + 1.0
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = httpx.get(f"{b}/users/me", headers=headers).status_code
        assert status == 401

        codes = [_fail_login(a if i % 2 else b, "roamer", "x") for i in range(6)]
        assert codes == [401] * 5 + [429]
    finally:
        for generator in (a_gen, b_gen):
            generator.close()


def test_workers_share_signing_keys(tmp_path: Path) -> None:
    """``--workers 2``: any worker accepts a token issued by any other."""
    generator = serve_workers(tmp_path, 2)
    base = next(generator)
    try:
        _register(base, "multi")
        tokens = [
            httpx.post(
                f"{base}/auth/token", data={"username": "multi", "password": PASSWORD}
            ).json()["access_token"]
            for _ in range(4)
        ]
        for token in tokens:
            for _ in range(4):  # new connections spread over the workers
                me = httpx.get(f"{base}/users/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200
        keys = httpx.get(f"{base}/.well-known/jwks.json").json()["keys"]
        assert len(keys) == 1
    finally:
        generator.close()
