"""The fastest a FastAPI login endpoint can be on one core: the floor under target 4.

``POST /token`` reads the OAuth2 password form (FastAPI's ``OAuth2PasswordRequestForm``),
verifies the password with Bastion's own ``PasswordHasher`` (Argon2id at Bastion's
configured parameters, in the same pool of low-priority threads, one per usable CPU),
and answers a fixed token response. Nothing else: no database, no session, no audit
row, no throttling, no token signing. It is not a login service; it measures what
FastAPI and uvicorn alone cost around one verify, so the benchmark can show how much
of the gap to the hash-bound limit is left to Bastion.

    taskset -c 0 .venv/bin/python -m uvicorn login_ceiling:create_app --factory --app-dir bench
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from bastion.config import Settings
from bastion.security.passwords import PasswordHasher, usable_cpus

USERNAME = "bench_user"  # bench/run.py logs in with these
PASSWORD = "bench-password-123"


def create_app() -> FastAPI:
    settings = Settings()
    hasher = PasswordHasher(memory_cost=settings.argon2_memory_cost,
                            time_cost=settings.argon2_time_cost, threads=usable_cpus())
    stored: list[str] = []  # the bench user's hash, made at startup

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stored.append(await hasher.hash(PASSWORD))
        yield
        hasher.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        verification = await hasher.verify(form.password, stored[0])
        if not verification.valid or form.username != USERNAME:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect username or password")
        return {"access_token": "ceiling", "token_type": "bearer"}

    return app
