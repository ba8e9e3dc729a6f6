"""Secrets Bastion must read back (TOTP seeds): AES-256-GCM under a key derived with HKDF."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
VERSION = "v1"


class SecretBox:
    """Encrypts small secrets, each bound to a context (its owner's id) as associated data.

    The key is derived from the instance secret for one purpose only (``info``),
    so it is never the key that hashes tokens.
    """

    def __init__(self, master_key: bytes, *, info: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("the master key must be at least 32 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(key=**********)"

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{VERSION}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, *, context: str) -> str:
        """The plaintext; :class:`ValueError` when ``sealed`` is not ours or not ``context``'s."""
        version, _, encoded = sealed.partition(":")
        if version != VERSION:
            raise ValueError("unknown sealed-secret version")
        raw = base64.urlsafe_b64decode(encoded)
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise ValueError("sealed secret does not open with this key and context") from exc
        return plain.decode()
