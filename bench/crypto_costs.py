"""Measure the CPU cost of Bastion's password hashing and JWT verification.

Prints a Markdown report on stdout. Pin it to one core for stable numbers:

    taskset -c 0 .venv/bin/python bench/crypto_costs.py > bench/results/crypto-costs.md

Only the standard library and Bastion's own dependencies (pwdlib, argon2-cffi,
bcrypt, PyJWT, cryptography) are used.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

PASSWORD = "correct horse battery staple 42"

# (memory_cost KiB, time_cost, note); parallelism is always 1.
ARGON2_PARAMS = [
    (19456, 2, "OWASP cheat-sheet minimum"),
    (47104, 1, "OWASP cheat-sheet; t=1 is below the t>=2 floor, reference only"),
    (19456, 3, ""),
    (65536, 2, ""),
    (65536, 3, ""),
]

ISSUER = "https://auth.bastion.example"
AUDIENCE = "bastion-api"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Run ``fn`` ``n`` times and return each run's wall time in seconds."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def hasher_row(label: str, hasher: Argon2Hasher | BcryptHasher, n: int) -> str:
    encoded = hasher.hash(PASSWORD)
    assert hasher.verify(PASSWORD, encoded)
    hasher.verify(PASSWORD, encoded)  # warm-up
    ms = [s * 1e3 for s in timed(lambda: hasher.verify(PASSWORD, encoded), n)]
    return (
        f"| {label} | {n} | **{statistics.median(ms):.1f}** | {min(ms):.1f} | {max(ms):.1f} |"
    )


def argon2_section(n: int) -> list[str]:
    default = Argon2Hasher()._hasher  # pwdlib passes argon2-cffi's defaults through
    lines = [
        "## Argon2id verify (pwdlib `Argon2Hasher`, parallelism=1)",
        "",
        f"Median of {n} `verify()` calls on a correct password, after one warm-up call.",
        "",
        "| m (KiB) / t / p | n | median ms | min ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m, t, note in ARGON2_PARAMS:
        label = f"m={m} / t={t} / p=1" + (f" ({note})" if note else "")
        hasher = Argon2Hasher(time_cost=t, memory_cost=m, parallelism=1)
        lines.append(hasher_row(label, hasher, n))
    d = default
    label = f"m={d.memory_cost} / t={d.time_cost} / p={d.parallelism} (pwdlib default)"
    lines.append(hasher_row(label, Argon2Hasher(), n))
    lines += [
        "",
        (f"pwdlib's `Argon2Hasher()` defaults: argon2id, time_cost={d.time_cost}, "
         f"memory_cost={d.memory_cost} KiB, parallelism={d.parallelism}, "
         f"hash_len={d.hash_len}, salt_len={d.salt_len}. These are argon2-cffi's "
         "RFC 9106 \"low-memory\" defaults. With p>1 the lanes run on threads, so "
         "the default row depends on how many cores the process is allowed to use."),
    ]
    return lines


def bcrypt_section(n: int) -> list[str]:
    return [
        "## bcrypt verify (pwdlib `BcryptHasher`)",
        "",
        f"Median of {n} `verify()` calls, after one warm-up call.",
        "",
        "| cost | n | median ms | min ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        hasher_row("rounds=12 ($2b$)", BcryptHasher(rounds=12), n),
    ]


def access_token_claims() -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "exp": now + 3600,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "scope": "me todos:read todos:write",
        "preferred_username": "alice.example",
    }


def jwt_section(n: int) -> list[str]:
    keys: list[tuple[str, str, object, object]] = []
    ed = ed25519.Ed25519PrivateKey.generate()
    keys.append(("EdDSA", "Ed25519", ed, ed.public_key()))
    p256 = ec.generate_private_key(ec.SECP256R1())
    keys.append(("ES256", "P-256", p256, p256.public_key()))
    rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys.append(("RS256", "RSA-2048", rsa2048, rsa2048.public_key()))
    secret = secrets.token_bytes(32)
    keys.append(("HS256", "256-bit secret (reference)", secret, secret))

    lines = [
        "## JWT sign and verify (PyJWT)",
        "",
        ("One access token (claims: iss, aud, sub, exp, iat, jti, sid, scope, "
         "preferred_username; header typ=at+jwt and kid). Verify is "
         "`jwt.decode(token, key, algorithms=[alg], audience=..., issuer=...)`, with "
         "signature, exp, iat, aud and iss checked. Keys are already-loaded "
         f"`cryptography` objects, not PEM. Mean over {n} iterations after 100 warm-up "
         "calls."),
        "",
        "| alg | key | token bytes | verify µs | sign µs | verifies/s (1 core) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    claims = access_token_claims()
    for alg, key_desc, signing_key, verify_key in keys:
        headers = {"typ": "at+jwt", "kid": f"bench-{alg.lower()}"}
        token = jwt.encode(claims, signing_key, algorithm=alg, headers=headers)
        decoded = jwt.decode(
            token, verify_key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER
        )
        assert decoded["sub"] == claims["sub"]
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"

        verify = functools.partial(
            jwt.decode, token, verify_key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER
        )
        sign = functools.partial(
            jwt.encode, claims, signing_key, algorithm=alg, headers=headers
        )

        timed(verify, 100)
        verify_us = sum(timed(verify, n)) / n * 1e6
        timed(sign, 100)
        sign_us = sum(timed(sign, n)) / n * 1e6
        lines.append(
            f"| {alg} | {key_desc} | {len(token)} | **{verify_us:.0f}** | {sign_us:.0f} "
            f"| {1e6 / verify_us:,.0f} |"
        )
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment_section() -> list[str]:
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    command = " ".join(["taskset -c 0 .venv/bin/python bench/crypto_costs.py", *sys.argv[1:]])
    libs = ["pwdlib", "argon2-cffi", "argon2-cffi-bindings", "bcrypt", "PyJWT", "cryptography"]
    return [
        "## Environment",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        (f"- CPU: {cpu_model()}, nproc={os.cpu_count()}, "
         f"this process pinned to CPU(s) {affinity}"),
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()} ({sys.implementation.name})",
        "- " + ", ".join(f"{name} {version(name)}" for name in libs),
        f"- Command: `{command}`",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--argon2-n", type=int, default=20)
    parser.add_argument("--bcrypt-n", type=int, default=10)
    parser.add_argument("--jwt-n", type=int, default=5000)
    args = parser.parse_args()

    sections = [
        ["# Crypto costs on this machine", "", "Generated by `bench/crypto_costs.py`."],
        environment_section(),
        argon2_section(args.argon2_n),
        bcrypt_section(args.bcrypt_n),
        jwt_section(args.jwt_n),
    ]
    print("\n\n".join("\n".join(s) for s in sections))


if __name__ == "__main__":
    main()
