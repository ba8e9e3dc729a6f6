"""Known attacks on JWT bearer tokens, one test each (in the manner of PyJWT's test_advisory.py).

Every forged token is presented as ``Authorization: Bearer <token>`` to ``GET /users/me``
and must get 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (API.md, "Tokens"
and the failure table). Every test also presents a control token built the same way but
legitimately (the real key, the real ``alg``, the real ``kid``, no extra header), which must
get 200, so that no test can pass because the forging helper itself is broken.

Tokens are built by hand (base64url JSON segments) and signed with PyJWT's algorithm
objects or ``hmac``, never with ``jwt.encode``, which would refuse several of the forgeries.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from bastion.db.engine import transaction
from bastion.runtime import Runtime
from bastion.security.access_tokens import LEEWAY_SECONDS
from bastion.security.signing_keys import KeyMaterial
from bastion.services.signing_keys import rotate_key
from conftest import Api

INVALID_TOKEN = 'Bearer error="invalid_token"'
DROP = object()  # as a value in ``edit``: remove that member
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


# --- building tokens by hand ---------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def segments_of(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload)), signature


def edit(base: Mapping[str, Any], changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    result = dict(base)
    for name, value in (changes or {}).items():
        if value is DROP:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def signing_input(header: Any, claims: Any) -> str:
    return f"{segment(header)}.{segment(claims)}"


def sign_asymmetric(header: Any, claims: Any, *, algorithm: str, private_key: Any) -> str:
    message = signing_input(header, claims)
    signature = jwt.get_algorithm_by_name(algorithm).sign(message.encode(), private_key)
    return f"{message}.{b64url(signature)}"


def sign_hmac(header: Any, claims: Any, *, secret: bytes, algorithm: str = "HS256") -> str:
    message = signing_input(header, claims)
    digest = hmac.new(secret, message.encode(), _HMAC_HASHES[algorithm]).digest()
    return f"{message}.{b64url(digest)}"


def attacker_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def attacker_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg="ES256", use="sig")
    return jwk


def self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


# --- presenting tokens ---------------------------------------------------------------------


def _authorization(token: str | bytes) -> list[tuple[bytes, bytes]]:
    """Raw header bytes, so non-ASCII and binary tokens reach the app unchanged."""
    raw = token if isinstance(token, bytes) else token.encode()
    return [(b"authorization", b"Bearer " + raw)]


async def assert_rejected(api: Api, cases: Mapping[str, str | bytes]) -> None:
    """Every case must be 401 invalid_token; all failing cases are reported together."""
    assert cases
    problems: list[str] = []
    for label, token in cases.items():
        try:
            response = await api.client.get("/users/me", headers=_authorization(token))
        except Exception as exc:  # noqa: BLE001 - an app crash is a finding, not a test error
            problems.append(f"{label}: the app raised {type(exc).__name__}: {exc}")
            continue
        challenges = response.headers.get_list("www-authenticate")
        if response.status_code != 401 or challenges != [INVALID_TOKEN]:
            problems.append(
                f"{label}: got {response.status_code} {challenges} {response.text[:160]}"
            )
    assert not problems, "not rejected with 401 invalid_token:\n  " + "\n  ".join(problems)


async def assert_accepted(api: Api, token: str, user_id: str) -> None:
    response = await api.client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, f"control token refused: {response.text}"
    assert response.json()["id"] == user_id


@dataclass
class Victim:
    """A logged-in user, their real access token taken apart, and the real signing key."""

    api: Api
    runtime: Runtime
    user_id: str
    username: str
    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    key: KeyMaterial  # the key that signed ``token`` (active when the victim logged in)

    def signed(
        self,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """The victim's token with ``header``/``claims`` changes, signed with the real key."""
        return sign_asymmetric(
            edit(self.header, header),
            edit(self.claims, claims),
            algorithm=self.key.algorithm,
            private_key=self.key.private_key,
        )

    def signed_raw(self, payload: bytes) -> str:
        """The real header over arbitrary payload bytes, signed with the real key."""
        message = f"{segment(self.header)}.{b64url(payload)}"
        signature = jwt.get_algorithm_by_name(self.key.algorithm).sign(
            message.encode(), self.key.private_key
        )
        return f"{message}.{b64url(signature)}"

    async def control(
        self,
        header: Mapping[str, Any] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        await assert_accepted(self.api, self.signed(header, claims), self.user_id)


@pytest.fixture
async def victim(api: Api, runtime: Runtime) -> Victim:
    account = await api.account()
    header, claims, _ = segments_of(account.access_token)
    assert header["kid"] == runtime.keys.ring.active.kid
    assert header["alg"] == runtime.keys.ring.active.algorithm
    assert claims["sub"] == account.id
    return Victim(
        api=api,
        runtime=runtime,
        user_id=account.id,
        username=account.username,
        token=account.access_token,
        header=header,
        claims=claims,
        key=runtime.keys.ring.active,
    )


class KeyServer:
    """A TCP listener on 127.0.0.1 that records every connection and serves attacker keys.

    If the app ever fetched a ``jku``/``x5u`` URL it would get a JWKS (or PEM certificate)
    holding the attacker's key, so a fetch could only help the attacker.
    """

    def __init__(self, *, jwks: dict[str, Any], cert_pem: bytes) -> None:
        self.connections: list[tuple[str, int]] = []
        server = self
        jwks_body = json.dumps(jwks).encode()

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server.connections.append(self.client_address)
                try:
                    self.request.settimeout(1.0)
                    request_line = self.request.recv(65536).split(b"\r\n", 1)[0]
                    body, kind = (
                        (cert_pem, b"application/pem-certificate-chain")
                        if b"cert" in request_line
                        else (jwks_body, b"application/json")
                    )
                    self.request.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: "
                        + kind
                        + b"\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\nConnection: close\r\n\r\n"
                        + body
                    )
                except OSError:
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    async def assert_untouched_then_self_check(self) -> None:
        await asyncio.sleep(0.2)  # let a background fetch, if any, reach the listener
        assert self.connections == [], f"the app connected to {self.base_url}"
        # The listener itself works: a connection of ours is recorded.
        with socket.create_connection(self.address, timeout=2) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(16)
        for _ in range(100):
            if self.connections:
                break
            await asyncio.sleep(0.01)
        assert len(self.connections) == 1


@dataclass
class Attacker:
    key: ec.EllipticCurvePrivateKey
    kid: str
    jwk: dict[str, Any]
    certificate: x509.Certificate


@pytest.fixture
def attacker() -> Attacker:
    key = attacker_key()
    return Attacker(
        key=key,
        kid="attacker-key-1",
        jwk=attacker_jwk(key, "attacker-key-1"),
        certificate=self_signed_certificate(key),
    )


@pytest.fixture
def key_server(attacker: Attacker) -> Iterator[KeyServer]:
    server = KeyServer(
        jwks={"keys": [attacker.jwk]},
        cert_pem=attacker.certificate.public_bytes(serialization.Encoding.PEM),
    )
    server.start()
    yield server
    server.stop()


# --- alg none and signature tricks ---------------------------------------------------------


async def test_alg_none_in_every_spelling(victim: Victim) -> None:
    """alg "none" (McLean, "Critical vulnerabilities in JSON Web Token libraries", 2015).

    Every spelling, with an empty signature and with a garbage one, and with the real kid.
    """
    cases: dict[str, str] = {}
    for spelling in ("none", "None", "NONE", "nOnE"):
        message = signing_input(edit(victim.header, {"alg": spelling}), victim.claims)
        cases[f"alg={spelling}, empty signature"] = f"{message}."
        cases[f"alg={spelling}, garbage signature"] = f"{message}.{b64url(b'garbage')}"
        cases[f"alg={spelling}, no kid"] = (
            signing_input(edit(victim.header, {"alg": spelling, "kid": DROP}), victim.claims) + "."
        )
    await assert_rejected(victim.api, cases)
    await victim.control()


async def test_null_signature(victim: Victim) -> None:
    """A signature of zero bytes ("psychic signatures", r = s = 0: CVE-2022-21449)."""
    _, _, signature = victim.token.split(".")
    length = len(b64url_decode(signature))
    message = victim.token.rsplit(".", 1)[0]
    await assert_rejected(
        victim.api,
        {
            "all-zero signature of the right length": f"{message}.{b64url(bytes(length))}",
            "one zero byte": f"{message}.{b64url(bytes(1))}",
            "all-0xff signature": message + "." + b64url(b"\xff" * length),
        },
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)


async def test_signature_stripped(victim: Victim) -> None:
    """The signature removed: ``header.payload.`` and ``header.payload``."""
    message = victim.token.rsplit(".", 1)[0]
    await assert_rejected(
        victim.api,
        {"empty signature segment": f"{message}.", "no signature segment": message},
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)


async def test_signature_from_another_token(victim: Victim) -> None:
    """A genuine signature by the real key, spliced from another token onto this one."""
    second = await victim.api.login(victim.username)
    assert second.status_code == 200
    other = second.json()["access_token"]
    other_signature = other.rsplit(".", 1)[1]
    message = victim.token.rsplit(".", 1)[0]
    await assert_rejected(
        victim.api,
        {
            "signature of the same user's other token": f"{message}.{other_signature}",
            "signature of a control token": (
                f"{message}.{victim.signed({}, {'jti': 'x'}).rsplit('.', 1)[1]}"
            ),
        },
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)
    await assert_accepted(victim.api, other, victim.user_id)


async def test_truncated_signature(victim: Victim) -> None:
    """The real signature cut short (a verifier that compares a prefix would accept it)."""
    message, signature = victim.token.rsplit(".", 1)
    await assert_rejected(
        victim.api,
        {
            f"signature minus {cut} characters": f"{message}.{signature[:-cut]}"
            for cut in (1, 2, 4, len(signature) // 2, len(signature) - 1)
        },
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)


async def test_tampered_subject_keeps_signature(victim: Victim) -> None:
    """Payload tampering: ``sub`` (and ``sid``) changed to another user's, signature kept."""
    other = await victim.api.account()
    _, other_claims, _ = segments_of(other.access_token)
    takeover = {"sub": other.id, "sid": other_claims["sid"]}
    header_segment, _, signature = victim.token.split(".")
    tampered = {
        "sub and sid of another user": edit(victim.claims, takeover),
        "sub of another user": edit(victim.claims, {"sub": other.id}),
    }
    await assert_rejected(
        victim.api,
        {
            label: f"{header_segment}.{segment(claims)}.{signature}"
            for label, claims in tampered.items()
        },
    )
    # Control: the same payload, correctly signed, is the other user (signature was the guard).
    await assert_accepted(victim.api, victim.signed({}, takeover), other.id)
    # Defence in depth: a signed token whose sub does not own its session is still refused.
    swapped = victim.signed({}, {"sub": other.id})
    await assert_rejected(victim.api, {"signed, only sub swapped": swapped})


async def test_tampered_scope_keeps_signature(victim: Victim) -> None:
    """Payload tampering: ``scope`` widened with ``users:write``, signature kept."""
    widened = {"scope": victim.claims["scope"] + " users:write users:read audit:read"}
    header_segment, _, signature = victim.token.split(".")
    await assert_rejected(
        victim.api,
        {"scope widened": f"{header_segment}.{segment(edit(victim.claims, widened))}.{signature}"},
    )
    control = victim.signed({}, widened)
    await assert_accepted(victim.api, control, victim.user_id)
    # Even correctly signed, a scope beyond the user's roles grants nothing (capped by roles).
    admin = await victim.api.client.get(
        "/admin/users", headers={"Authorization": f"Bearer {control}"}
    )
    assert admin.status_code == 403, admin.text


# --- algorithm confusion and weak secrets --------------------------------------------------


def _public_key_secrets(victim: Victim, jwks: dict[str, Any]) -> dict[str, bytes]:
    public = victim.key.public_key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    [served] = [key for key in jwks["keys"] if key["kid"] == victim.key.kid]
    return {
        "PEM SubjectPublicKeyInfo": pem,
        "PEM without trailing newline": pem.rstrip(b"\n"),
        "DER SubjectPublicKeyInfo": der,
        "OpenSSH public key (CVE-2024-33663)": ssh,
        "JWK JSON as served": json.dumps(served).encode(),
        "JWK JSON compact": json.dumps(served, separators=(",", ":")).encode(),
        "JWK JSON sorted": json.dumps(served, sort_keys=True).encode(),
    }


async def test_hmac_signed_with_the_public_key(victim: Victim) -> None:
    """Algorithm confusion: HS256 keyed with the public key (CVE-2022-29217, CVE-2024-33663).

    The public key as PEM (SubjectPublicKeyInfo), DER, OpenSSH and the JWK JSON string from
    /.well-known/jwks.json, with the real kid.
    """
    jwks = (await victim.api.client.get("/.well-known/jwks.json")).json()
    cases: dict[str, str] = {}
    for form, secret in _public_key_secrets(victim, jwks).items():
        for algorithm in ("HS256", "HS384", "HS512"):
            header = edit(victim.header, {"alg": algorithm})
            cases[f"{algorithm} keyed with {form}"] = sign_hmac(
                header, victim.claims, secret=secret, algorithm=algorithm
            )
    await assert_rejected(victim.api, cases)
    await victim.control()


async def test_hmac_with_a_weak_secret(victim: Victim) -> None:
    """Weak or placeholder HMAC secrets ("secret", "", "your-secret-key-here"), real kid."""
    secrets_tried = [
        b"secret",
        b"",
        b"your-secret-key-here",
        b"09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        victim.key.kid.encode(),
    ]
    cases = {
        f"HS256 with {secret!r}": sign_hmac(
            edit(victim.header, {"alg": "HS256"}), victim.claims, secret=secret
        )
        for secret in secrets_tried
    }
    await assert_rejected(victim.api, cases)
    await victim.control()


# --- kid and embedded-key headers ----------------------------------------------------------


async def test_kid_injection(victim: Victim) -> None:
    """kid injection: path traversal, SQL and shell metacharacters, odd types, no kid."""
    kids: dict[str, Any] = {
        "path traversal to /dev/null": "../../../../dev/null",
        "SQL injection": "' OR '1'='1",
        "SQL union": "x' UNION SELECT 'AAAA' --",
        "shell injection": "; rm -rf /",
        "empty": "",
        "10 kB": "A" * 10_240,
        "number": 1,
        "zero": 0,
        "object": {"$ne": ""},
        "list": [victim.key.kid],
        "null": None,
        "real kid upper-cased": victim.key.kid.upper(),
        "real kid with a NUL": victim.key.kid + "\x00",
        "real kid with a space": victim.key.kid + " ",
    }
    cases = {f"kid {label}": victim.signed({"kid": kid}) for label, kid in kids.items()}
    cases["no kid"] = victim.signed({"kid": DROP})
    # The classic: kid -> /dev/null, then HMAC with the empty file's content.
    cases["kid /dev/null, HS256 with an empty secret"] = sign_hmac(
        edit(victim.header, {"kid": "../../../../dev/null", "alg": "HS256"}),
        victim.claims,
        secret=b"",
    )
    await assert_rejected(victim.api, cases)
    await victim.control({"kid": victim.key.kid})


async def test_jku_header(victim: Victim, attacker: Attacker, key_server: KeyServer) -> None:
    """``jku`` pointing at an attacker's JWKS (key injection / SSRF); the app must not fetch it."""
    url = f"{key_server.base_url}/jwks.json"
    cases = {
        "jku, attacker kid, attacker-signed": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "kid": attacker.kid, "jku": url}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        ),
        "jku, real kid, attacker-signed": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "jku": url}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        ),
        "jku, real kid, really signed": victim.signed({"jku": url}),
    }
    await assert_rejected(victim.api, cases)
    await key_server.assert_untouched_then_self_check()
    await victim.control()


async def test_x5u_header(victim: Victim, attacker: Attacker, key_server: KeyServer) -> None:
    """``x5u`` pointing at an attacker's certificate (key injection / SSRF); never fetched."""
    url = f"{key_server.base_url}/cert.pem"
    cases = {
        "x5u, attacker kid, attacker-signed": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "kid": attacker.kid, "x5u": url}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        ),
        "x5u, no kid, attacker-signed": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "kid": DROP, "x5u": url}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        ),
        "x5u, real kid, really signed": victim.signed({"x5u": url}),
    }
    await assert_rejected(victim.api, cases)
    await key_server.assert_untouched_then_self_check()
    await victim.control()


async def test_embedded_jwk_header(victim: Victim, attacker: Attacker) -> None:
    """An attacker key embedded as ``jwk`` and trusted by the verifier (CVE-2018-0114)."""
    public_jwk = {k: v for k, v in attacker.jwk.items() if k not in PRIVATE_JWK_MEMBERS}
    cases = {
        f"jwk, {label}": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "kid": kid, "jwk": public_jwk}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        )
        for label, kid in (
            ("attacker kid", attacker.kid),
            ("real kid", victim.key.kid),
            ("no kid", DROP),
        )
    }
    await assert_rejected(victim.api, cases)
    await victim.control()


async def test_embedded_x5c_header(victim: Victim, attacker: Attacker) -> None:
    """An attacker's self-signed certificate embedded as ``x5c`` (certificate injection)."""
    der = attacker.certificate.public_bytes(serialization.Encoding.DER)
    chain = [base64.b64encode(der).decode()]
    cases = {
        f"x5c, {label}": sign_asymmetric(
            edit(victim.header, {"alg": "ES256", "kid": kid, "x5c": chain}),
            victim.claims,
            algorithm="ES256",
            private_key=attacker.key,
        )
        for label, kid in (("attacker kid", attacker.kid), ("real kid", victim.key.kid))
    }
    await assert_rejected(victim.api, cases)
    await victim.control()


async def test_crit_header(victim: Victim) -> None:
    """``crit`` naming extensions the verifier does not implement (RFC 7515 §4.1.11)."""
    cases = {
        f"crit {crit!r}": victim.signed({"crit": crit, **extra})
        for crit, extra in (
            (["exp"], {}),
            (["foo"], {"foo": True}),
            (["foo"], {}),
            (["b64"], {"b64": True}),
        )
    }
    await assert_rejected(victim.api, cases)
    await victim.control()


# --- typ and claims, signed with the real key ----------------------------------------------


async def test_typ_confusion(victim: Victim) -> None:
    """typ confusion (RFC 8725 §3.11): an ID token or generic JWT used as an access token."""
    typs: dict[str, Any] = {
        "JWT": "JWT",
        "jwt": "jwt",
        "missing": DROP,
        "empty": "",
        "application/jwt": "application/jwt",
        "JOSE": "JOSE",
        "secevent+jwt": "secevent+jwt",
        "number": 1,
        "list": ["at+jwt"],
    }
    await assert_rejected(
        victim.api, {f"typ {label}": victim.signed({"typ": typ}) for label, typ in typs.items()}
    )
    await victim.control({"typ": "at+jwt"})


async def test_wrong_issuer(victim: Victim) -> None:
    """A token from another issuer, incl. partial matches (PyJWT CVE-2024-53861)."""
    issuer = victim.runtime.settings.issuer
    assert victim.claims["iss"] == issuer
    issuers: dict[str, Any] = {
        "another issuer": "https://evil.example",
        "a prefix of ours (partial match)": issuer[:-1],
        "a substring of ours": issuer[len("http://") :],
        "ours with a trailing slash": issuer + "/",
        "ours in a list": [issuer],
        "empty": "",
    }
    await assert_rejected(
        victim.api,
        {f"iss {label}": victim.signed({}, {"iss": iss}) for label, iss in issuers.items()},
    )
    await victim.control({}, {"iss": issuer})


async def test_wrong_audience(victim: Victim) -> None:
    """A token minted for another audience (token substitution between services)."""
    audience = victim.runtime.settings.audience
    assert victim.claims["aud"] == audience
    audiences = {
        "another service": "billing",
        "a prefix of ours": audience[:-1],
        "ours plus a suffix": audience + "-admin",
        "upper-cased": audience.upper(),
        "empty": "",
    }
    await assert_rejected(
        victim.api,
        {f"aud {label}": victim.signed({}, {"aud": aud}) for label, aud in audiences.items()},
    )
    await victim.control({}, {"aud": audience})


async def test_audience_list_without_ours(victim: Victim) -> None:
    """An ``aud`` array that does not contain our audience (RFC 7519 §4.1.3)."""
    audience = victim.runtime.settings.audience
    lists = {
        "two other services": ["billing", "reports"],
        "one other service": ["billing"],
        "empty list": [],
        "a prefix of ours": [audience[:-1]],
    }
    await assert_rejected(
        victim.api,
        {f"aud {label}": victim.signed({}, {"aud": value}) for label, value in lists.items()},
    )
    await victim.control({}, {"aud": ["billing", audience]})


async def test_expired_token(victim: Victim) -> None:
    """An expired token (exp in the past, beyond the 5 s leeway), correctly signed."""
    now = int(time.time())
    cases = {
        "expired an hour ago": victim.signed({}, {"exp": now - 3600, "iat": now - 4500}),
        "expired 30 s ago": victim.signed({}, {"exp": now - 30, "iat": now - 930}),
        "exp 0": victim.signed({}, {"exp": 0, "iat": 0}),
    }
    await assert_rejected(victim.api, cases)
    await victim.control({}, {"exp": now + 600, "iat": now - 300})


async def test_expired_token_says_so_on_every_use(victim: Victim) -> None:
    """"token expired", not a generic "invalid token", however often it is presented:
    a token seen once while valid (and remembered as verified) and one never seen before."""
    exp = int(time.time()) - LEEWAY_SECONDS + 2  # still inside the leeway for 1-2 s
    seen = victim.signed({}, {"exp": exp, "iat": exp - 900})
    await assert_accepted(victim.api, seen, victim.user_id)
    await asyncio.sleep(max(0.0, exp + LEEWAY_SECONDS - time.time()) + 0.2)
    never_seen = victim.signed({}, {"exp": exp - 60, "iat": exp - 960})
    details = []
    for token in (seen, seen, seen, never_seen, never_seen):
        response = await victim.api.client.get("/users/me", headers=_authorization(token))
        assert response.headers.get_list("www-authenticate") == [INVALID_TOKEN]
        details.append((response.status_code, response.json()["detail"]))
    assert details == [(401, "token expired")] * 5


async def test_missing_required_claims(victim: Victim) -> None:
    """Each required claim absent or null (API.md: a missing required claim is 401)."""
    required = ("iss", "aud", "sub", "exp", "iat", "jti", "sid", "scope")
    cases: dict[str, str] = {}
    for claim in required:
        cases[f"{claim} missing"] = victim.signed({}, {claim: DROP})
        cases[f"{claim} null"] = victim.signed({}, {claim: None})
    await assert_rejected(victim.api, cases)
    assert set(required) <= set(victim.claims)
    await victim.control()


# --- malformed and oversized input ---------------------------------------------------------


async def test_jwe_and_wrong_segment_counts(victim: Victim) -> None:
    """A JWE in compact form (5 segments; cf. CVE-2024-33664) and other segment counts."""
    jwe_header = {"alg": "dir", "enc": "A256GCM", "kid": victim.key.kid, "typ": "at+jwt"}
    zipped = dict(jwe_header, zip="DEF")
    iv, ciphertext, tag = b64url(bytes(12)), b64url(b"x" * 64), b64url(bytes(16))
    real_header, real_payload, real_signature = victim.token.split(".")
    await assert_rejected(
        victim.api,
        {
            "JWE dir/A256GCM": f"{segment(jwe_header)}..{iv}.{ciphertext}.{tag}",
            "JWE RSA-OAEP": (
                f"{segment(dict(jwe_header, alg='RSA-OAEP'))}.{b64url(b'k' * 32)}"
                f".{iv}.{ciphertext}.{tag}"
            ),
            "JWE with zip": f"{segment(zipped)}..{iv}.{ciphertext}.{tag}",
            "real token plus one segment": f"{victim.token}.{real_signature}",
            "four segments": f"{real_header}.{real_payload}.{real_payload}.{real_signature}",
            "real token plus two segments": f"{victim.token}.{iv}.{tag}",
            "one segment": real_header,
            "enc header on a JWS": victim.signed({"enc": "A256GCM"}),
        },
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)


async def test_oversized_token(victim: Victim) -> None:
    """An oversized but correctly signed token (> 8 kB): 401, not 500 (resource exhaustion)."""
    big = victim.signed({}, {"pad": "x" * 9_000})
    huge = victim.signed({"x-pad": "y" * 60_000})
    assert len(big) > 8192
    await assert_rejected(victim.api, {"9 kB of claims": big, "60 kB header": huge})
    await victim.control({}, {"pad": "x" * 200})


async def test_binary_garbage_in_authorization_header(victim: Victim) -> None:
    """Non-ASCII and binary bytes in the Authorization header: 401, not 500."""
    header_segment, payload_segment, signature = victim.token.split(".")
    bad_json_header = b64url(b'{"alg":"\xff\xfe","typ":"at+jwt"}')
    await assert_rejected(
        victim.api,
        {
            "latin-1 bytes": b"\xff\xfe\xfd\xfc",
            "high bytes in three segments": b"\x80\x81.\x82\x83.\x84\x85",
            "NUL bytes": b"\x00\x00.\x00.\x00",
            "control characters": b"\x01\x02\x1b[31m.\x7f.\x08",
            "UTF-8 inside the real token": (
                f"{header_segment}.{payload_segment[:10]}".encode()
                + "é☃".encode()
                + f"{payload_segment[10:]}.{signature}".encode()
            ),
            "all high bytes": bytes(range(0x80, 0x100)),
            "invalid UTF-8 in header JSON": f"{bad_json_header}.{payload_segment}.{signature}",
            "invalid UTF-8 in signed payload": victim.signed_raw(b'{"sub":"\xff\xfe"}'),
            "header JSON is a list": f"{b64url(b'[1,2]')}.{payload_segment}.{signature}",
            "header is not base64": f"!!!.{payload_segment}.{signature}",
            "signed payload is a list": victim.signed_raw(b"[1,2,3]"),
            "signed payload is a number": victim.signed_raw(b"42"),
        },
    )
    await assert_accepted(victim.api, victim.token, victim.user_id)


# --- key rotation and the JWKS -------------------------------------------------------------


async def _rotate(runtime: Runtime, publish_for: dt.timedelta) -> str:
    async with transaction(runtime.sessionmaker) as db:
        kid = await rotate_key(
            db, algorithm=runtime.settings.jwt_algorithm, publish_for=publish_for
        )
    await runtime.keys.reload()
    assert runtime.keys.ring.active.kid == kid
    return kid


async def test_token_of_a_retired_unpublished_key(victim: Victim, api: Api) -> None:
    """A token signed by a key retired and unpublished (e.g. after a key compromise)."""
    old_kid = victim.key.kid
    new_kid = await _rotate(victim.runtime, dt.timedelta(seconds=-1))
    assert old_kid not in victim.runtime.keys.ring.keys
    await assert_rejected(api, {"token of the retired key": victim.token})
    # Control: a token issued now (by the new key) works.
    fresh = await api.login(victim.username)
    assert fresh.status_code == 200
    token = fresh.json()["access_token"]
    assert segments_of(token)[0]["kid"] == new_kid
    await assert_accepted(api, token, victim.user_id)


async def test_token_of_a_retired_key_seen_before_retirement(victim: Victim, api: Api) -> None:
    """A token verified once before its key was unpublished must not outlive the key."""
    await assert_accepted(api, victim.token, victim.user_id)  # in use before the rotation
    await _rotate(victim.runtime, dt.timedelta(seconds=-1))
    assert victim.header["kid"] not in victim.runtime.keys.ring.keys
    await assert_rejected(api, {"token of the retired key, used before": victim.token})
    fresh = await api.login(victim.username)
    assert fresh.status_code == 200
    await assert_accepted(api, fresh.json()["access_token"], victim.user_id)


async def test_rotation_keeps_the_old_key_published(victim: Victim, api: Api) -> None:
    """``bastion keys rotate``: old tokens keep working while the old key stays published."""
    old_kid = victim.key.kid
    new_kid = await _rotate(victim.runtime, dt.timedelta(minutes=20))
    assert new_kid != old_kid
    await assert_accepted(api, victim.token, victim.user_id)
    fresh = await api.login(victim.username)
    assert fresh.status_code == 200
    token = fresh.json()["access_token"]
    assert segments_of(token)[0]["kid"] == new_kid
    await assert_accepted(api, token, victim.user_id)
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}
    # A token signed with the old (retired but published) key by the attacker's hand still
    # verifies only with the old key: swapping its kid for the new one fails.
    await assert_rejected(api, {"old-key signature, new kid": victim.signed({"kid": new_kid})})


async def test_jwks_publishes_public_members_only(victim: Victim, api: Api) -> None:
    """The JWKS leaks no private key material (``d``, RSA CRT members, symmetric ``k``)."""
    await _rotate(victim.runtime, dt.timedelta(minutes=20))  # a retired key is listed too
    response = await api.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert not PRIVATE_JWK_MEMBERS & set(key), key
        assert {"kid", "kty", "alg"} <= set(key) and key["use"] == "sig", key
        assert key["alg"] == victim.runtime.settings.jwt_algorithm
        assert key["kty"] in {"EC", "OKP", "RSA"}
        # Each published key is what it claims to be: it verifies a token of its kid.
        public = jwt.PyJWK(key).key
        ring_key = victim.runtime.keys.ring.get(key["kid"])
        assert ring_key is not None
        assert public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == ring_key.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    await assert_accepted(api, victim.token, victim.user_id)


# --- beyond the JWT: opaque tokens and throttling ------------------------------------------


async def test_refresh_token_replay(api: Api) -> None:
    """Stolen refresh token replayed after its owner rotated it (RFC 9700 §4.14.2)."""
    alice = await api.account()
    rotated = (await api.refresh(alice.refresh_token)).json()
    replay = await api.refresh(alice.refresh_token)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The whole session is gone: the legitimate successor and its access token too.
    assert (await api.refresh(rotated["refresh_token"])).status_code == 400
    me = await api.client.get(
        "/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"}
    )
    assert me.status_code == 401


async def test_cross_token_confusion(api: Api) -> None:
    """An access token used as a refresh token, a refresh token or API key as a bearer."""
    alice = await api.account()
    key = await api.api_key(alice, ["me"])
    as_refresh = await api.refresh(alice.access_token)
    assert as_refresh.status_code == 400 and as_refresh.json()["error"] == "invalid_grant"
    for credential in (alice.refresh_token, key):
        response = await api.client.get(
            "/users/me", headers={"Authorization": f"Bearer {credential}"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # A bearer token is not an API key either.
    assert (
        await api.client.get("/users/me", headers={"X-API-Key": alice.access_token})
    ).status_code == 401


async def test_throttling_bypass_by_username_spelling(api: Api) -> None:
    """Brute force spread over case variants and padding of one username is one counter."""
    alice = await api.account()
    spellings = [
        alice.username.upper(),
        f" {alice.username}",
        alice.username.title(),
        alice.username.swapcase(),
        f"{alice.username} ",
        alice.username,
    ]
    codes = [(await api.login(name, "Wrong-password-1")).status_code for name in spellings]
    assert codes == [401] * 5 + [429]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "repeated"),
    [
        ("/auth/token", "grant_type=refresh_token&grant_type=password"),
        ("/auth/token", "username={user}&username=someone-else"),
        ("/auth/token", "password=wrong-guess-1&password={password}"),
        ("/auth/token", "scope=me&scope=todos:write"),
        ("/auth/token", "resource=https://a.example&resource=https://b.example"),
        ("/auth/token", "refresh_token=x&refresh_token=y"),
        ("/auth/token", "mfa_token=x&mfa_token=y"),
        ("/auth/token", "code=123456&code=654321"),
        ("/auth/token", "client_id=a&client_id=b"),
        ("/auth/revoke", "token={token}&token=bsr_other"),
        ("/auth/revoke", "token_type_hint=access_token&token_type_hint=refresh_token"),
    ],
)
async def test_repeated_parameters_are_refused(api: Api, path: str, repeated: str) -> None:
    """Parameter pollution (RFC 6749 §3.2: parameters MUST NOT be included more than once):
    which copy a parser keeps is not the client's to choose. 400 invalid_request, and
    nothing happens: no login, no revocation."""
    alice = await api.account()
    base = {
        "/auth/token": f"username={alice.username}&password={alice.password}",
        "/auth/revoke": f"token={alice.access_token}",
    }[path]
    fields = repeated.format(user=alice.username, password=alice.password,
                             token=alice.access_token)
    names = {pair.split("=")[0] for pair in fields.split("&")}
    kept = "&".join(p for p in base.split("&") if p.split("=")[0] not in names)
    body = "&".join(filter(None, [kept, fields]))
    response = await api.client.post(path, content=body, headers=FORM)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"
    assert (await api.client.get("/users/me", headers=alice.headers)).status_code == 200
    # A single copy of each is a request like any other (the control).
    assert (await api.client.post(path, content=base, headers=FORM)).status_code == 200
    query = await api.client.post(f"{path}?resource=a&resource=b", content=base, headers=FORM)
    assert query.status_code == 400 and query.json()["error"] == "invalid_request"
