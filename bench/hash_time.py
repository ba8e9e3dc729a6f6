"""Time one Argon2id password verify at Bastion's configured parameters; print one JSON object.

Run it with Bastion's interpreter, pinned to the server's core (``bench/run.py`` does):

    taskset -c 0 .venv/bin/python bench/hash_time.py -n 20

Like ``peers/hash_time.py`` it times, in-process, exactly the call the login
path makes (pwdlib ``verify_and_update`` over Argon2id then bcrypt), so
``1 / median`` is the most logins per second one core can do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from bastion.config import Settings
from crypto_costs import PASSWORD, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="timed verify calls")
    n = parser.parse_args().n

    settings = Settings()
    memory_cost, time_cost = settings.argon2_memory_cost, settings.argon2_time_cost
    context = PasswordHash(
        (
            Argon2Hasher(memory_cost=memory_cost, time_cost=time_cost, parallelism=1),
            BcryptHasher(),
        )
    )
    stored = context.hash(PASSWORD)
    assert context.verify_and_update(PASSWORD, stored)[0], "verify of a fresh hash failed"
    ms = [s * 1e3 for s in timed(lambda: context.verify_and_update(PASSWORD, stored), n)]
    median = statistics.median(ms)
    print(
        json.dumps(
            {
                "hasher": "pwdlib Argon2Hasher (argon2id), parallelism=1",
                "memory_cost_kib": memory_cost,
                "time_cost": time_cost,
                "n": n,
                "cpu_affinity": sorted(os.sched_getaffinity(0)),
                "verify_ms_median": round(median, 2),
                "verify_ms_min": round(min(ms), 2),
                "verify_ms_max": round(max(ms), 2),
                "theoretical_login_per_s": round(1e3 / median, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
