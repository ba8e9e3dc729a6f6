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
    port = _free_port()
    environment = {
        **os.environ,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "BASTION_LOG_LEVEL": "warning",
        **env,
    }
    environment.pop("BASTION_REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve", "--port", str(port)],
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
