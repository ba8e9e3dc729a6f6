"""Signing keys: generation, loading from PEM, and the key ring the token codec reads."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

SUPPORTED_ALGORITHMS = ("ES256", "EdDSA", "RS256")
SigningPrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
SigningPublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    kid: str
    algorithm: str
    private_key: SigningPrivateKey = field(repr=False)
    public_key: SigningPublicKey = field(repr=False)
    retired: bool = False
    publish_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable snapshot: the key that signs, and every key that still verifies."""

    active: KeyMaterial
    keys: Mapping[str, KeyMaterial]

    def get(self, kid: str) -> KeyMaterial | None:
        return self.keys.get(kid)


def new_kid() -> str:
    return secrets.token_hex(8)


def generate_private_pem(algorithm: str) -> str:
    key: PrivateKeyTypes
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def load_key(
    *,
    kid: str,
    algorithm: str,
    private_pem: str,
    retired: bool = False,
    publish_until: datetime | None = None,
) -> KeyMaterial:
    private_key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    expected = {
        "ES256": ec.EllipticCurvePrivateKey,
        "EdDSA": ed25519.Ed25519PrivateKey,
        "RS256": rsa.RSAPrivateKey,
    }.get(algorithm)
    if expected is None or not isinstance(private_key, expected):
        raise ValueError(f"key {kid} does not match algorithm {algorithm}")
    assert isinstance(private_key, SigningPrivateKey)  # narrowed by the check above
    return KeyMaterial(
        kid=kid,
        algorithm=algorithm,
        private_key=private_key,
        public_key=private_key.public_key(),
        retired=retired,
        publish_until=publish_until,
    )
