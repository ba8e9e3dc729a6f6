"""Real ``bastion serve`` processes on loopback ports, for tests that need a real socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PASSWORD = "violet-Harbor-91-lantern"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hook gets to run."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    workdir: Path,
    *,
    workers: int = 1,
    port: int | None = None,
    log: Path | None = None,
    **env: str,
) -> Server:
    """Start ``bastion serve`` in ``workdir`` (SQLite file there unless env says otherwise);
    its standard error goes to ``log`` when given."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    environment = {
        **inherited,
        "BASTION_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'serve.db'}",
        "BASTION_LOG_LEVEL": "warning",
        # Tests sign up many accounts from 127.0.0.1; the quota itself is tested in test_accounts.
        "BASTION_REGISTER_MAX_PER_IP": "100000",
        **env,
    }
    command = [sys.executable, "-m", "bastion", "serve", "--port", str(port)]
    with open(log or os.devnull, "ab") as stderr:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=environment,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    server = Server(process=process, base=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bastion serve exited with {process.returncode}")
        try:
            if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("bastion serve did not become healthy in 30 s")


def worker_pids(server: Server) -> list[int]:
    """The worker processes of a ``--workers N`` server (children running uvicorn's spawn)."""
    pid = server.process.pid
    pids = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"multiprocessing.spawn" in command and b"resource_tracker" not in command:
            pids.append(int(child))
    return sorted(pids)


@contextmanager
def running_server(workdir: Path, *, workers: int = 1, **env: str) -> Iterator[Server]:
    server = start_server(workdir, workers=workers, **env)
    try:
        yield server
    finally:
        server.stop()


def register(base: str, username: str) -> None:
    response = httpx.post(
        f"{base}/auth/register",
        json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text


def login(base: str, username: str) -> dict[str, str]:
    response = httpx.post(f"{base}/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body
