"""OpenID Connect id_tokens, signed with the access tokens' active key (ES256 by default).

``typ: JWT``, ``aud`` the client_id; ``at_hash`` binds the access token issued
with it (OIDC Core 3.1.3.6): the left half of its hash under the algorithm's
hash function, base64url-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.security.access_tokens import sign_jwt, verify_own_jwt
from bastion.security.signing_keys import KeyRing

ID_TOKEN_TYPE = "JWT"
_HASHES: dict[str, Callable[[bytes], Any]] = {
    "ES256": hashlib.sha256, "RS256": hashlib.sha256, "EdDSA": hashlib.sha512,
}


def token_hash(value: str, algorithm: str) -> str:
    """``at_hash``: the left half of the token's hash, base64url without padding."""
    digest: bytes = _HASHES[algorithm](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class IdTokenClaims:
    """What a relying party learns of the sign-in."""

    client_id: str
    user_id: str
    auth_time: int
    session_id: str
    nonce: str | None = None
    username: str | None = None


class IdTokenSigner:
    """Signs id_tokens, and reads back our own (a logout's ``id_token_hint``)."""

    def __init__(self, *, key_ring: Callable[[], KeyRing], issuer: str, ttl: int) -> None:
        self._key_ring = key_ring
        self._issuer = issuer
        self._ttl = ttl

    def sign(self, claims: IdTokenClaims, *, access_token: str | None = None) -> str:
        key = self._key_ring().active
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "aud": claims.client_id,
            "sub": claims.user_id,
            "iat": now,
            "exp": now + self._ttl,
            "auth_time": claims.auth_time,
            "sid": claims.session_id,
        }
        if claims.nonce is not None:
            payload["nonce"] = claims.nonce
        if claims.username is not None:
            payload["preferred_username"] = claims.username
        if access_token is not None:
            payload["at_hash"] = token_hash(access_token, key.algorithm)
        return sign_jwt(payload, key, typ=ID_TOKEN_TYPE)

    def read_hint(self, token: str) -> dict[str, Any]:
        """The claims of an id_token we issued, expired or not (RP-initiated logout)."""
        return verify_own_jwt(
            token, self._key_ring(), typ=ID_TOKEN_TYPE, issuer=self._issuer, verify_exp=False
        )
