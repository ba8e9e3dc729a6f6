"""Verifying Bastion's access tokens (RFC 9068) exactly as Bastion does: the one module using PyJWT.

A token is bound to its purpose by ``typ: at+jwt``, ``iss`` and ``aud``; its
``alg`` must be the ``alg`` of the JWK its ``kid`` names; headers that would
make a verifier fetch or trust outside key material, and JWEs, are refused.
Every PyJWT error becomes :class:`InvalidToken`.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import jwt

from bastion_resource.cache import BoundedCache
from bastion_resource.errors import BastionUnavailable, InvalidToken, UnknownKey
from bastion_resource.keys import KeyStore, VerificationKey
from bastion_resource.principal import Principal

ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "scope")
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "enc", "zip"})
LEEWAY_SECONDS = 5
_ERRORS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidAudienceError, "token is for another audience"),
    (jwt.InvalidIssuerError, "token is from another issuer"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidSignatureError, "bad signature"),
)


class TokenVerifier:
    """Checks a token's header, signature and claims; remembers the tokens it has verified.

    The memory is bounded and keyed by the exact token string; on every use the
    expiry is checked again, and so is that the signing key is still published.
    """

    def __init__(
        self,
        *,
        keys: KeyStore,
        issuer: str,
        audience: str,
        leeway: int = LEEWAY_SECONDS,
        cache_size: int = 20_000,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache: BoundedCache[str, tuple[Principal, str]] = BoundedCache(cache_size)

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and still good, without awaiting anything."""
        cached = self._cache.get(token)
        if cached is None:
            return None
        principal, kid = cached
        if principal.expires_at + self._leeway <= time.time():
            self._cache.discard(token)
            raise InvalidToken("token expired")
        if self._keys.get(kid) is None:
            self._cache.discard(token)
            raise InvalidToken("signing key withdrawn")
        return principal

    async def verify(self, token: str) -> Principal:
        principal = self.remembered(token)
        if principal is not None:
            return principal
        header = _header(token)
        key = await self._key_for(header)
        principal = self._decode(token, key)
        self._cache.put(token, (principal, key.kid))
        return principal

    async def _key_for(self, header: dict[str, Any]) -> VerificationKey:
        if FORBIDDEN_HEADERS.intersection(header):
            raise InvalidToken("token header not accepted")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = self._keys.get(kid) or await self._keys.resolve(kid)
        if key is None:
            if not self._keys.loaded:
                raise BastionUnavailable(
                    "Bastion's signing keys are not available",
                    retry_after=self._keys.seconds_until_refetch(),
                )
            raise UnknownKey("unknown key id")
        if header.get("alg") != key.algorithm:
            raise InvalidToken("algorithm not allowed for this key")
        return key

    def _decode(self, token: str, key: VerificationKey) -> Principal:
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(_description(exc)) from exc
        return principal_from_claims(payload)


def _header(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc


def _description(exc: jwt.PyJWTError) -> str:
    for kind, description in _ERRORS:
        if isinstance(exc, kind):
            return description
    return "invalid token"


def _text(payload: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidToken("malformed claims")
    return value


def _number(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken("malformed claims")
    return value


def principal_from_claims(payload: dict[str, Any]) -> Principal:
    """The principal of a verified payload; ``sid`` may be absent only from a client's own token.

    A client-credentials token (RFC 9068 section 2.2) has ``sub`` equal to its
    ``client_id`` and no session; every other token must name its session.
    """
    subject = _text(payload, "sub")
    client_id = _text(payload, "client_id", required=False)
    session_id = _text(payload, "sid", required=client_id is None or client_id != subject)
    scope = payload.get("scope")
    username = payload.get("preferred_username")
    if not isinstance(scope, str) or not (username is None or isinstance(username, str)):
        raise InvalidToken("malformed claims")
    _number(payload, "iat")
    return Principal(
        subject=str(subject),
        scopes=frozenset(scope.split()),
        audience=str(_text(payload, "aud")),
        username=username,
        session_id=session_id,
        client_id=client_id,
        token_id=str(_text(payload, "jti")),
        expires_at=_number(payload, "exp"),
        claims=MappingProxyType(dict(payload)),
    )
