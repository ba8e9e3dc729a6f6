"""Named regressions: every token the kit must refuse with 401 ``invalid_token``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.kit_support import SigningKey, standard_claims

ForgeToken = Callable[[SigningKey], str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, object], claims: dict[str, object]) -> str:
    encoded = (_b64(json.dumps(part).encode()) for part in (header, claims))
    return ".".join(encoded) + "."


def _alg_none(spelling: str) -> ForgeToken:
    return lambda key: _unsigned(
        {"alg": spelling, "typ": "at+jwt", "kid": key.kid}, standard_claims()
    )


def _hs256_with_public_key(key: SigningKey) -> str:
    """CVE-2015-9235 / CVE-2022-29217: the public key used as an HMAC secret."""
    pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = ".".join(_b64(json.dumps(p).encode()) for p in (header, standard_claims()))
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _foreign_key_with_our_kid(key: SigningKey) -> str:
    impostor = SigningKey(key.kid)
    return impostor.sign()


def _missing(claim: str) -> ForgeToken:
    return lambda key: key.sign(**{claim: None})


def _header(**extra: object) -> ForgeToken:
    return lambda key: key.sign(headers=extra)


def _jwe(key: SigningKey) -> str:
    header = {"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt", "kid": key.kid}
    return ".".join([_b64(json.dumps(header).encode()), "a", "b", "c", "d"])


REFUSED: dict[str, ForgeToken] = {
    "alg none": _alg_none("none"),
    "alg None": _alg_none("None"),
    "alg NONE": _alg_none("NONE"),
    "HS256 signed with the public key": _hs256_with_public_key,
    "a foreign key under our kid": _foreign_key_with_our_kid,
    "an unknown kid": lambda key: SigningKey("not-ours").sign(),
    "no kid": lambda key: jwt.encode(
        standard_claims(), key.private_key, algorithm="ES256", headers={"typ": "at+jwt"}
    ),
    "alg other than the key's": lambda key: (
        _unsigned({"alg": "ES384", "typ": "at+jwt", "kid": key.kid}, standard_claims())
        + _b64(b"x" * 96)
    ),
    "typ JWT": _header(typ="JWT"),
    "typ absent": lambda key: jwt.encode(
        standard_claims(), key.private_key, algorithm="ES256", headers={"kid": key.kid}
    ),
    "typ of an ID token": _header(typ="id_token+jwt"),
    "jku header": _header(jku="https://evil.example/jwks.json"),
    "x5u header": _header(x5u="https://evil.example/cert.pem"),
    "jwk header": _header(jwk={"kty": "EC"}),
    "x5c header": _header(x5c=["MIIB"]),
    "crit header": _header(crit=["exp"]),
    "a JWE": _jwe,
    "another audience": lambda key: key.sign(aud="bastion"),
    "an audience list": lambda key: key.sign(aud=["https://orders.example", "bastion"]),
    "another issuer": lambda key: key.sign(iss="https://evil.example"),
    "expired": lambda key: key.sign(exp=int(time.time()) - 60),
    "issued in the future": lambda key: key.sign(iat=int(time.time()) + 3600),
    "a float exp": lambda key: key.sign(exp=time.time() + 900),
    "a numeric sub": lambda key: key.sign(sub=7),
    "a user token without sid": _missing("sid"),
    "a client token whose client_id is not its sub": lambda key: key.sign(
        sid=None, client_id="another-client"
    ),
    "too long": lambda key: key.sign(padding="x" * 5000),
    "not a JWT": lambda key: "not-a-token",
    "a signature cut off": lambda key: key.sign().rsplit(".", 1)[0] + ".",
    "claims tampered after signing": lambda key: _tampered(key),
    **{
        f"no {claim}": _missing(claim)
        for claim in ("iss", "aud", "sub", "exp", "iat", "jti", "scope")
    },
}


def _tampered(key: SigningKey) -> str:
    header, _, signature = key.sign().split(".")
    claims = _b64(json.dumps(standard_claims(scope="orders:read orders:write admin")).encode())
    return f"{header}.{claims}.{signature}"


@pytest.mark.parametrize("forge", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_with_invalid_token(
    forge: ForgeToken, client: httpx.AsyncClient, key: SigningKey
) -> None:
    response = await client.get("/orders", headers={"Authorization": f"Bearer {forge(key)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert set(response.json()) == {"detail"}


async def test_a_client_token_needs_no_session(client: httpx.AsyncClient, key: SigningKey) -> None:
    token = key.sign(sid=None, sub="client-9", client_id="client-9", preferred_username=None)
    response = await client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
