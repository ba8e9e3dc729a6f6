"""Access tokens (RFC 9068 JWTs): the one module that imports PyJWT.

Every token is bound to its purpose by ``typ: at+jwt``, ``iss`` and ``aud``;
its ``alg`` must be the algorithm of the key its ``kid`` names; headers that
would make a verifier fetch or trust outside key material are refused.
Every PyJWT error becomes :class:`bastion.errors.InvalidToken`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from bastion.errors import InvalidToken
from bastion.security.signing_keys import KeyMaterial, KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 4096
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "scope")
# ``sid`` too, except in a client's own token (client_credentials): ``sub`` is then its client_id.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "enc", "zip"})
LEEWAY_SECONDS = 5
EXPIRED = "token expired"  # on every use of an expired token, cached before or not
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
    session_id: str | None  # None only in a client's own token
    scopes: frozenset[str]
    username: str
    token_id: str
    issued_at: int
    expires_at: int
    audiences: frozenset[str]  # ``aud``: one string when Bastion issued it, maybe a list
    client_id: str | None = None  # RFC 9068 ``client_id``: the OAuth client it was issued to

    @property
    def is_client_token(self) -> bool:
        """A client_credentials token: the client acts for itself, no user, no session."""
        return self.session_id is None and self.client_id == self.subject

    @property
    def audience(self) -> str:
        """The single audience of a token Bastion issued (of a list, the first in order)."""
        return min(self.audiences)


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

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str:
        return self._audience

    def issue(
        self,
        *,
        user_id: str,
        username: str,
        session_id: str | None,
        scopes: frozenset[str],
        audience: str | None = None,
        client_id: str | None = None,
    ) -> IssuedToken:
        """Sign a token for ``audience`` (a resource server), by default Bastion's own.

        A client's own token has no session: ``user_id`` is then its ``client_id``.
        """
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
            audiences=frozenset({audience or self._audience}),
            client_id=client_id,
        )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": audience or self._audience,
            "sub": user_id,
            "exp": claims.expires_at,
            "iat": now,
            "jti": claims.token_id,
            "sid": session_id,
            "scope": " ".join(sorted(scopes)),
        }
        if username:
            payload["preferred_username"] = username
        if session_id is None:
            del payload["sid"]
        if client_id is not None:
            payload["client_id"] = client_id
        token = jwt.encode(
            payload,
            key.private_key,
            algorithm=key.algorithm,
            headers={"typ": ACCESS_TOKEN_TYPE, "kid": key.kid},
        )
        return IssuedToken(token=token, expires_in=self._ttl, claims=claims)

    def verify(self, token: str, *, audiences: Collection[str] | None = None) -> AccessClaims:
        """The claims of a live token of ours whose ``aud`` is one of ``audiences``.

        By default only Bastion's own audience is accepted: a token issued for
        another API (RFC 8707) is refused by Bastion's endpoints.
        """
        claims = self._verify_any_audience(token)
        if self._audience not in claims.audiences and (
            audiences is None or claims.audiences.isdisjoint(audiences)
        ):
            raise InvalidToken("token is for another audience")
        return claims

    def _verify_any_audience(self, token: str) -> AccessClaims:
        cached = self._cache.get(token)
        if cached is not None:
            claims, kid = cached
            if claims.expires_at + LEEWAY_SECONDS <= time.time():
                self._cache.pop(token, None)
                raise InvalidToken(EXPIRED)
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
        header = _header(token)
        key = self._key_for(header)
        try:
            payload = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                # ``aud`` is required here and matched by ``verify`` against the
                # audiences its caller accepts (Bastion's own, or a resource server's).
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_aud": False,
                },
            )
        except jwt.ExpiredSignatureError as exc:  # raised only once the signature is checked
            raise InvalidToken(EXPIRED) from exc
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
    sub, sid, jti, scope, aud, client_id = (
        payload.get(name) for name in ("sub", "sid", "jti", "scope", "aud", "client_id")
    )
    username = payload.get("preferred_username", "")
    exp, iat = payload.get("exp"), payload.get("iat")
    if client_id is not None and not (isinstance(client_id, str) and client_id):
        raise InvalidToken("malformed claims")
    if sid is None and client_id is not None and client_id == sub:
        sid_ok = True  # a client's own token
    else:
        sid_ok = isinstance(sid, str) and bool(sid)
    texts_ok = sid_ok and all(isinstance(value, str) and value for value in (sub, jti))
    audiences = _audiences(aud)
    if not (texts_ok and audiences and isinstance(scope, str) and isinstance(username, str)):
        raise InvalidToken("malformed claims")
    if not (isinstance(exp, int) and isinstance(iat, int)):
        raise InvalidToken("malformed claims")
    return AccessClaims(
        subject=str(sub),
        session_id=str(sid) if sid is not None else None,
        scopes=frozenset(scope.split()),
        username=username,
        token_id=str(jti),
        issued_at=iat,
        expires_at=exp,
        audiences=audiences,
        client_id=client_id,
    )


def _audiences(aud: object) -> frozenset[str]:
    """RFC 7519 4.1.3: one string or a list of strings; anything else (or empty) is none."""
    if isinstance(aud, str):
        return frozenset({aud}) if aud else frozenset()
    if isinstance(aud, list) and all(isinstance(item, str) and item for item in aud):
        return frozenset(aud)
    return frozenset()


def _header(token: str) -> dict[str, Any]:
    """The unverified JOSE header of a compact JWS of sane size, else InvalidToken."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed token") from exc


def sign_jwt(payload: dict[str, Any], key: KeyMaterial, *, typ: str) -> str:
    """Sign ``payload`` with ``key``, headed ``typ`` and ``kid`` (the id_token's signer uses it)."""
    return jwt.encode(payload, key.private_key, algorithm=key.algorithm,
                      headers={"typ": typ, "kid": key.kid})


def verify_own_jwt(
    token: str, key_ring: KeyRing, *, typ: str, issuer: str, verify_exp: bool = True
) -> dict[str, Any]:
    """The claims of a JWT of ours of type ``typ`` (e.g. an id_token hint), else InvalidToken."""
    header = _header(token)
    kid = header.get("kid")
    key = key_ring.get(kid) if isinstance(kid, str) else None
    if FORBIDDEN_HEADERS.intersection(header) or header.get("typ") != typ or key is None:
        raise InvalidToken("not a token of ours")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.public_key, algorithms=[key.algorithm], issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "iat"], "verify_aud": False,
                     "verify_exp": verify_exp},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken("invalid token") from exc
    return claims
