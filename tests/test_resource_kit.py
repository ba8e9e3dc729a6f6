"""The resource-server kit against real processes: ``bastion serve`` and the orders example.

Bastion and the orders service (``examples/orders_service``, under uvicorn) run
as separate processes on loopback; the CLI works on Bastion's database beside
them. The last test stops Bastion, so it stays last.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from servers import PASSWORD, Server, free_port, register, start_server

pytestmark = pytest.mark.slow

AUDIENCE = "https://orders.example"
ORDER_SCOPES = ("orders:read", "orders:write")
EXAMPLE = Path(__file__).parent.parent / "examples" / "orders_service"


@dataclass
class Deployment:
    bastion: Server
    orders: str
    database_url: str


def bastion_cli(database_url: str, *args: str, stdin: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    result = subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        env={**env, "BASTION_DATABASE_URL": database_url},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def start_orders(port: int, **env: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(EXAMPLE)]
    process = subprocess.Popen(
        [*command, "main:create_app", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the orders service exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the orders service did not start in 30 s")


def token_for(base: str, username: str, **form: str) -> dict[str, str]:
    response = httpx.post(
        f"{base}/auth/token", data={"username": username, "password": PASSWORD, **form}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def orders_token(deployment: Deployment, **form: str) -> dict[str, str]:
    return token_for(deployment.bastion.base, "alice", resource=AUDIENCE, **form)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_orders_api(base: str) -> str:
    """As the admin: the API and its scopes, granted to every user; returns an introspection key."""
    admin = bearer(token_for(base, "admin")["access_token"])

    def call(method: str, path: str, body: dict[str, object], status: int) -> dict[str, object]:
        response = httpx.request(method, f"{base}{path}", json=body, headers=admin)
        assert response.status_code == status, response.text
        answer: dict[str, object] = response.json()
        return answer

    for scope in ORDER_SCOPES:
        call("POST", "/admin/scopes", {"name": scope, "description": scope}, 201)
    user_role = httpx.get(f"{base}/admin/roles/user", headers=admin).json()
    call("PATCH", "/admin/roles/user", {"scopes": [*user_role["scopes"], *ORDER_SCOPES]}, 200)
    api = {"identifier": AUDIENCE, "name": "Orders", "scopes": list(ORDER_SCOPES)}
    call("POST", "/admin/resource-servers", api, 201)
    key = {"name": "orders introspection", "scopes": ["tokens:introspect"]}
    return str(call("POST", "/users/me/api-keys", key, 201)["key"])


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("resource-kit")
    url = f"sqlite+aiosqlite:///{workdir / 'serve.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bastion = start_server(
        workdir, port=port, BASTION_ISSUER=base, BASTION_KEY_REFRESH_INTERVAL="1"
    )
    orders_port = free_port()
    orders = None
    try:
        bastion_cli(
            url, "users", "create", "admin", "--email", "admin@example.com", "--role", "admin",
            "--password-stdin", stdin=PASSWORD + "\n",
        )  # fmt: skip
        api_key = register_orders_api(base)
        register(base, "alice")
        orders = start_orders(
            orders_port,
            ORDERS_BASTION_ISSUER=base,
            ORDERS_AUDIENCE=AUDIENCE,
            ORDERS_BASTION_API_KEY=api_key,
            ORDERS_KEY_REFETCH_INTERVAL="1",
        )
        yield Deployment(bastion, f"http://127.0.0.1:{orders_port}", url)
    finally:
        if orders is not None:
            orders.terminate()
            orders.wait(timeout=15)
        bastion.stop()


def test_a_token_for_the_api_with_the_scope_is_accepted(deployment: Deployment) -> None:
    token = orders_token(deployment)
    assert set(token["scope"].split()) == {"orders:read", "orders:write"}
    placed = httpx.post(
        f"{deployment.orders}/orders", json={"item": "tea"}, headers=bearer(token["access_token"])
    )
    assert placed.status_code == 201, placed.text
    listed = httpx.get(f"{deployment.orders}/orders", headers=bearer(token["access_token"]))
    assert listed.status_code == 200
    assert [order["item"] for order in listed.json()] == ["tea"]


def test_a_token_for_another_audience_is_refused(deployment: Deployment) -> None:
    bastions_own = token_for(deployment.bastion.base, "alice")["access_token"]
    response = httpx.get(f"{deployment.orders}/orders", headers=bearer(bastions_own))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="token is for another audience"'
    )


def test_a_missing_scope_is_403_with_the_challenge(deployment: Deployment) -> None:
    narrow = orders_token(deployment, scope="orders:read")["access_token"]
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(narrow)).status_code == 200
    response = httpx.post(f"{deployment.orders}/orders", json={"item": "x"}, headers=bearer(narrow))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="orders:write"'
    )
    assert response.json() == {"detail": "this credential lacks the scope orders:write"}


def _decoded(segment: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(segment + "==="))
    return decoded


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, claims, _ = token.split(".")
    return _decoded(header), _decoded(claims)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_tokens_are_refused(deployment: Deployment) -> None:
    genuine = orders_token(deployment)["access_token"]
    header, claims = _segments(genuine)
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    forgeries = {
        "a foreign key under Bastion's kid": jwt.encode(
            claims, foreign_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": header["kid"]}
        ),
        "a kid Bastion never had": jwt.encode(
            claims, foreign_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "forged"}
        ),
        "alg none": f"{_b64({**header, 'alg': 'none'})}.{_b64(claims)}.",
        "wider scopes, same signature": ".".join(
            [genuine.split(".")[0], _b64({**claims, "scope": "orders:read orders:admin"}),
             genuine.split(".")[2]]
        ),
    }  # fmt: skip
    for name, forged in forgeries.items():
        response = httpx.get(f"{deployment.orders}/orders", headers=bearer(forged))
        assert response.status_code == 401, name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name


def test_a_key_rotation_needs_no_restart(deployment: Deployment) -> None:
    before = orders_token(deployment)["access_token"]
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(before)).status_code == 200
    bastion_cli(deployment.database_url, "keys", "rotate")
    deadline = time.monotonic() + 15
    while True:  # Bastion's worker takes up the new key within its refresh interval (1 s)
        after = orders_token(deployment)["access_token"]
        if jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]:
            break
        assert time.monotonic() < deadline, "Bastion kept signing with the old key"
        time.sleep(0.3)
    time.sleep(1.1)  # past the kit's refetch interval since its last key fetch
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(after)).status_code == 200
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(before)).status_code == 200


def test_a_logout_is_seen_at_once_where_the_route_introspects(deployment: Deployment) -> None:
    token = orders_token(deployment)
    access = token["access_token"]
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(access)).status_code == 200
    revoked = httpx.post(
        f"{deployment.bastion.base}/auth/revoke", data={"token": token["refresh_token"]}
    )
    assert revoked.status_code == 200
    response = httpx.post(f"{deployment.orders}/orders", json={"item": "x"}, headers=bearer(access))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="token is not active"'
    )
    # Verified offline, a read still passes until the token expires: that is the trade.
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(access)).status_code == 200


def test_cached_keys_keep_serving_while_bastion_is_down(deployment: Deployment) -> None:
    """Last: stops Bastion for good."""
    seen = orders_token(deployment)["access_token"]
    unseen = orders_token(deployment)["access_token"]
    assert httpx.get(f"{deployment.orders}/orders", headers=bearer(seen)).status_code == 200
    deployment.bastion.stop()
    for token in (seen, unseen):
        response = httpx.get(f"{deployment.orders}/orders", headers=bearer(token))
        assert response.status_code == 200, response.text
    claims = _segments(seen)[1]
    stranger = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256",
        headers={"typ": "at+jwt", "kid": "unknown-while-down"},
    )  # fmt: skip
    started = time.monotonic()
    response = httpx.get(f"{deployment.orders}/orders", headers=bearer(stranger))
    assert response.status_code == 401
    placed = httpx.post(f"{deployment.orders}/orders", json={"item": "x"}, headers=bearer(unseen))
    assert placed.status_code == 503
    assert int(placed.headers["retry-after"]) >= 1
    assert time.monotonic() - started < 5
