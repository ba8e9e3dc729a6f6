#!/usr/bin/env python3
"""In-process single-hash timing for a peer's *own* password hasher.

Run it with the peer's venv interpreter, pinned to the same CPU as the server:

    taskset -c 0 bench/.work/peers/seed_tutorial/.venv/bin/python bench/peers/hash_time.py --peer seed_tutorial
    taskset -c 0 bench/.work/peers/fastapi_users/.venv/bin/python bench/peers/hash_time.py --peer fastapi_users

It imports the peer's app module (with an in-memory DATABASE_URL so nothing is
written) and times exactly the call its login path makes (verify) and the one
its register path makes (hash). The theoretical login/s limit of a 1-core,
1-worker server is 1 / verify-time: a login cannot be cheaper than one verify.

Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "correct horse battery staple"


def load_peer(peer):
    app_dir = os.path.join(HERE, peer)
    sys.path.insert(0, app_dir)
    if peer == "seed_tutorial":
        os.environ["DATABASE_URL"] = "sqlite:///:memory:"
        import app  # noqa: E402

        ctx = app.pwd_context
        return {
            "hasher": "passlib CryptContext(schemes=['bcrypt'])",
            "hash": ctx.hash,
            "verify": ctx.verify,
        }
    if peer == "fastapi_users":
        os.environ["DATABASE_URL"] = "sqlite+aiosqlite:///:memory:"
        import app  # noqa: E402

        helper = app.UserManager(None).password_helper  # the default PasswordHelper
        return {
            "hasher": "fastapi-users PasswordHelper() (pwdlib Argon2Hasher default)",
            "hash": helper.hash,
            "verify": lambda pw, h: helper.verify_and_update(pw, h)[0],
        }
    raise SystemExit(f"unknown peer {peer!r} (no password hasher)")


def time_calls(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", required=True)
    ap.add_argument("-n", type=int, default=10, help="timed calls per operation")
    args = ap.parse_args()

    peer = load_peer(args.peer)
    stored = peer["hash"](PASSWORD)  # warm-up + the stored hash to verify against
    assert peer["verify"](PASSWORD, stored), "verify of a fresh hash failed"

    hash_t = time_calls(lambda: peer["hash"](PASSWORD), args.n)
    verify_t = time_calls(lambda: peer["verify"](PASSWORD, stored), args.n)

    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = None
    verify_med = statistics.median(verify_t)
    print(
        json.dumps(
            {
                "peer": args.peer,
                "hasher": peer["hasher"],
                "hash_params": "$".join(stored.split("$")[: 4 if stored.startswith("$argon2") else 3]),
                "n": args.n,
                "cpu_affinity": cpus,
                "hash_ms_median": round(statistics.median(hash_t) * 1000, 2),
                "hash_ms_min": round(min(hash_t) * 1000, 2),
                "verify_ms_median": round(verify_med * 1000, 2),
                "verify_ms_min": round(min(verify_t) * 1000, 2),
                "theoretical_login_per_s": round(1.0 / verify_med, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
