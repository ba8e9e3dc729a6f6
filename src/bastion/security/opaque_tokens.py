"""Opaque credentials (refresh tokens, API keys): random, prefixed, stored as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

REFRESH_TOKEN_PREFIX = "bsr_"
API_KEY_PREFIX = "bst_"
TOKEN_BYTES = 32  # 256 random bits
DISPLAY_PREFIX_LENGTH = 12


def generate(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


class TokenDigester:
    """HMAC-SHA256 of a token under a server-side key: what the database stores."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("token hashing key must be at least 32 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "TokenDigester(key=**********)"

    def digest(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
