"""Test doubles for the kit: signing keys made here, and a fake Bastion serving discovery and JWKS."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://bastion.test"
AUDIENCE = "https://orders.example"
API_KEY = "bst_test_introspection_key"


class SigningKey:
    """An ES256 key pair with a ``kid``, signing tokens as Bastion does."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, alg="ES256", use="sig")
        return jwk

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        payload = {**(claims or standard_claims()), **overrides}
        payload = {name: value for name, value in payload.items() if value is not None}
        header = {"typ": "at+jwt", "kid": self.kid, **(headers or {})}
        return jwt.encode(payload, self.private_key, algorithm="ES256", headers=header)


def standard_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "exp": now + 900,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": "session-1",
        "scope": "orders:read orders:write",
        "preferred_username": "alice",
    }
    claims.update(overrides)
    return claims


@dataclass
class FakeBastion:
    """Discovery, JWKS and introspection, counted per path; ``down`` makes every call fail."""

    keys: list[SigningKey]
    api_key: str
    down: bool = False
    delay: float = 0.0
    issuer: str = ISSUER
    inactive: set[str] = field(default_factory=set)
    live_scope: str | None = None
    calls: dict[str, int] = field(default_factory=dict)
    seen_headers: list[httpx.Headers] = field(default_factory=list)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] = self.calls.get(path, 0) + 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery())
        if path == "/.well-known/jwks.json":
            return httpx.Response(200, json={"keys": [key.jwk() for key in self.keys]})
        if path == "/auth/introspect" and request.method == "POST":
            return self.introspect(request)
        return httpx.Response(404, json={"detail": "not found"})

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
            "introspection_endpoint": f"{ISSUER}/auth/introspect",
            "token_endpoint": f"{ISSUER}/auth/token",
        }

    def introspect(self, request: httpx.Request) -> httpx.Response:
        self.seen_headers.append(request.headers)
        if request.headers.get("x-api-key") != self.api_key:
            return httpx.Response(401, json={"detail": "not authenticated"})
        token = parse_qs(request.content.decode())["token"][0]
        if token in self.inactive:
            return httpx.Response(200, json={"active": False})
        claims = jwt.decode(token, options={"verify_signature": False})
        scope = claims["scope"] if self.live_scope is None else self.live_scope
        answer = {"active": True, **claims, "scope": scope, "token_type": "Bearer"}
        return httpx.Response(200, json=answer)

    def fetches(self) -> int:
        return self.calls.get("/.well-known/jwks.json", 0)

    def introspections(self) -> int:
        return self.calls.get("/auth/introspect", 0)
