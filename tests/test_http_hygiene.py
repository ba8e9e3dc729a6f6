"""Response headers, CORS, body limits and error shapes from the Conventions section."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import Api


@pytest.mark.parametrize("path", ["/", "/healthz", "/users/me", "/todos", "/nowhere"])
async def test_every_response_is_nosniff(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/users/me", "/admin/users", "/auth/sessions"])
async def test_sensitive_responses_are_not_stored(api: Api, path: str) -> None:
    admin = await api.account("admin")
    response = await api.client.get(path, headers=admin.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_token_errors_are_not_cached_either(api: Api) -> None:
    response = await api.client.post("/auth/token", data={"grant_type": "magic"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


async def test_no_cors_headers_by_default(api: Api) -> None:
    response = await api.client.get("/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("settings_overrides", [{"cors_origins": "https://app.example"}])
async def test_cors_only_for_listed_origins(api: Api, settings_overrides: dict[str, Any]) -> None:
    allowed = await api.client.get("/", headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = await api.client.get("/", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in refused.headers


def test_wildcard_cors_origin_is_refused(tmp_path: Any) -> None:
    from pydantic import ValidationError

    from bastion.config import Settings

    with pytest.raises(ValidationError):
        Settings(cors_origins="*", _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("secret", ["your-secret-key-here", "changeme", "short"])
def test_placeholder_secrets_are_refused(secret: str) -> None:
    from pydantic import ValidationError

    from bastion.config import Settings

    with pytest.raises(ValidationError):
        Settings(secret_key=secret, _env_file=None)  # type: ignore[call-arg]


async def test_oversized_json_body_is_413(api: Api) -> None:
    body = {"username": "x" * 70_000, "email": "a@example.com", "password": "p"}
    response = await api.client.post("/auth/register", json=body)
    assert response.status_code == 413


async def test_oversized_form_body_is_413(api: Api) -> None:
    response = await api.client.post("/auth/token", data={"username": "u", "password": "p" * 70_000})
    assert response.status_code == 413


async def test_chunked_body_without_length_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"a" * 8192

    response = await api.client.post(
        "/auth/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "headers,http_version",
    [
        ([(b"content-length", b"10")], "1.1"),  # longer than it says
        ([(b"transfer-encoding", b"chunked")], "1.1"),
        ([], "2"),  # HTTP/2 may send a body with neither header
    ],
)
async def test_undeclared_body_is_cut_off_at_the_limit(
    headers: list[tuple[bytes, bytes]], http_version: str
) -> None:
    """A body longer than declared (or not declared) is cut off at the limit, not buffered."""
    from bastion.api.middleware import BodyLimitMiddleware

    seen: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            seen.append(total)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = BodyLimitMiddleware(app, max_size=1024)
    messages = [{"type": "http.request", "body": b"a" * 800, "more_body": True}] * 3
    messages.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": headers, "method": "POST", "http_version": http_version}
    await limited(scope, receive, send)
    assert sent[0]["status"] == 413
    assert max(seen) <= 1024


@pytest.mark.parametrize(
    "field,value",
    [("username", "bad\x00name"), ("full_name", "Eve\x00"), ("email", "eve\x00@example.com")],
)
async def test_control_characters_are_422_not_500(api: Api, field: str, value: str) -> None:
    response = await api.register(**{field: value})
    assert response.status_code == 422


async def test_validation_errors_never_echo_the_password(api: Api) -> None:
    secret = "Zz9-" + "q" * 1100
    response = await api.register(password=secret)
    assert response.status_code == 422
    assert secret not in response.text and "qqqqqqqq" not in response.text


async def test_oauth_validation_errors_are_invalid_request(api: Api) -> None:
    response = await api.client.post("/auth/token", data={"username": "u" * 5000, "password": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_discovery_documents(api: Api) -> None:
    config = (await api.client.get("/.well-known/openid-configuration")).json()
    for key in ("issuer", "token_endpoint", "jwks_uri", "revocation_endpoint", "scopes_supported"):
        assert key in config
    assert set(config["grant_types_supported"]) == {
        "password", "refresh_token", "urn:bastion:mfa", "authorization_code", "client_credentials",
    }
    assert "none" in config["token_endpoint_auth_methods_supported"]
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).status_code == 200
    info = (await api.client.get("/")).json()
    assert info["name"] == "bastion" and info["docs"] == "/docs"


async def test_request_bodies_are_not_coerced(api: Api) -> None:
    """"no" is not false: a typed field takes its JSON type only."""
    admin = await api.account("admin")
    user = await api.account()
    response = await api.client.patch(
        f"/admin/users/{user.id}", json={"is_active": "no"}, headers=admin.headers
    )
    assert response.status_code == 422
    todo = await api.client.post("/todos", json={"title": "t", "done": 1}, headers=user.headers)
    assert todo.status_code == 422
