"""Access tokens (RFC 9068 JWTs): the one module that imports PyJWT.

Every token is bound to its purpose by ``typ: at+jwt``, ``iss`` and ``aud``;
its ``alg`` must be the algorithm of the key its ``kid`` names; headers that
would make a verifier fetch or trust outside key material are refused.
Every PyJWT error becomes :class:`bastion.errors.InvalidToken`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from bastion.errors import InvalidToken
from bastion.security.signing_keys import KeyMaterial, KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "sid", "scope")
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "enc", "zip"})
LEEWAY_SECONDS = 5
_JWK_EXPORTERS: dict[str, Callable[..., Any]] = {
    "ES256": ECAlgorithm.to_jwk,
    "EdDSA": OKPAlgorithm.to_jwk,
    "RS256": RSAAlgorithm.to_jwk,
}


class UnknownKey(InvalidToken):
    """The token names a ``kid`` this process does not (yet) know."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str
    session_id: str
    scopes: frozenset[str]
    username: str
    token_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    claims: AccessClaims


def public_jwk(key: KeyMaterial) -> dict[str, Any]:
    jwk: dict[str, Any] = _JWK_EXPORTERS[key.algorithm](key.public_key, as_dict=True)
    jwk.update(kid=key.kid, alg=key.algorithm, use="sig")
    return jwk


class AccessTokenCodec:
    """Issues and verifies access tokens against the current :class:`KeyRing`.

    Verified tokens are remembered (bounded, by exact token string) so a
    client presenting the same token again skips the signature check; the
    expiry is checked on every use, and revocation is the caller's job.
    """

    def __init__(
        self,
        *,
        key_ring: Callable[[], KeyRing],
        issuer: str,
        audience: str,
        ttl: int,
        cache_size: int = 20_000,
    ) -> None:
        self._key_ring = key_ring
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl
        self._cache: dict[str, tuple[AccessClaims, str]] = {}
        self._cache_size = cache_size

    def issue(
        self, *, user_id: str, username: str, session_id: str, scopes: frozenset[str]
    ) -> IssuedToken:
        key = self._key_ring().active
        now = int(time.time())
        claims = AccessClaims(
            subject=user_id,
            session_id=session_id,
            scopes=scopes,
            username=username,
            token_id=str(uuid.uuid4()),
            issued_at=now,
            expires_at=now + self._ttl,
        )
        payload = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "exp": claims.expires_at,
            "iat": now,
            "jti": claims.token_id,
            "sid": session_id,
            "scope": " ".join(sorted(scopes)),
            "preferred_username": username,
        }
        token = jwt.encode(
            payload,
            key.private_key,
            algorithm=key.algorithm,
            headers={"typ": ACCESS_TOKEN_TYPE, "kid": key.kid},
        )
        return IssuedToken(token=token, expires_in=self._ttl, claims=claims)

    def verify(self, token: str) -> AccessClaims:
        cached = self._cache.get(token)
        if cached is not None:
            claims, kid = cached
            if claims.expires_at + LEEWAY_SECONDS <= time.time():
                self._cache.pop(token, None)
                raise InvalidToken("token expired")
            if self._key_ring().get(kid) is None:  # its key was withdrawn since
                self._cache.pop(token, None)
                raise InvalidToken("signing key withdrawn")
            return claims
        claims, kid = self._verify_uncached(token)
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)), None)
        self._cache[token] = (claims, kid)
        return claims

    def _verify_uncached(self, token: str) -> tuple[AccessClaims, str]:
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        key = self._key_for(header)
        try:
            payload = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        return _claims_from(payload), key.kid

    def _key_for(self, header: dict[str, Any]) -> KeyMaterial:
        if FORBIDDEN_HEADERS.intersection(header):
            raise InvalidToken("token header not accepted")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in {
            ACCESS_TOKEN_TYPE,
            "application/" + ACCESS_TOKEN_TYPE,
        }:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        key = self._key_ring().get(kid)
        if key is None:
            raise UnknownKey("unknown key id")
        if header.get("alg") != key.algorithm:
            raise InvalidToken("algorithm not allowed for this key")
        return key


def _claims_from(payload: dict[str, Any]) -> AccessClaims:
    sub, sid, jti, scope = (payload.get(name) for name in ("sub", "sid", "jti", "scope"))
    username = payload.get("preferred_username", "")
    exp, iat = payload.get("exp"), payload.get("iat")
    texts_ok = all(isinstance(value, str) and value for value in (sub, sid, jti))
    if not (texts_ok and isinstance(scope, str) and isinstance(username, str)):
        raise InvalidToken("malformed claims")
    if not (isinstance(exp, int) and isinstance(iat, int)):
        raise InvalidToken("malformed claims")
    return AccessClaims(
        subject=str(sub),
        session_id=str(sid),
        scopes=frozenset(scope.split()),
        username=username,
        token_id=str(jti),
        issued_at=iat,
        expires_at=exp,
    )
