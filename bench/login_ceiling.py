"""The fastest a FastAPI login endpoint can be on one core: the floor under target 4.

``POST /token`` reads the OAuth2 password form (FastAPI's ``OAuth2PasswordRequestForm``),
verifies the password with exactly the call Bastion's login makes (pwdlib
``verify_and_update``, Argon2id at Bastion's configured parameters, as
``bench/hash_time.py`` times it) in a thread pool sized like Bastion's, and answers
a fixed token response. Nothing else: no database, no session, no audit row, no
throttling, no token signing. It is not a login service; it measures what FastAPI
and uvicorn alone cost around one verify, so the benchmark can show how much of the
gap to the hash-bound limit is left to Bastion.

    taskset -c 0 .venv/bin/python -m uvicorn login_ceiling:create_app --factory --app-dir bench
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from bastion.config import Settings

USERNAME = "bench_user"  # bench/run.py logs in with these
PASSWORD = "bench-password-123"


def create_app() -> FastAPI:
    settings = Settings()
    hasher = PasswordHash((
        Argon2Hasher(memory_cost=settings.argon2_memory_cost,
                     time_cost=settings.argon2_time_cost, parallelism=1),
        BcryptHasher(),
    ))
    stored = hasher.hash(PASSWORD)
    pool = ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0)))
    app = FastAPI()

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        valid, _ = await asyncio.get_running_loop().run_in_executor(
            pool, hasher.verify_and_update, form.password, stored)
        if not valid or form.username != USERNAME:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect username or password")
        return {"access_token": "ceiling", "token_type": "bearer"}

    return app

