"""Password hashing: Argon2id through pwdlib, bcrypt for legacy hashes, off the event loop."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import anyio
import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

BCRYPT_MAX_BYTES = 72


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    new_hash: str | None = None  # set when the stored hash should be upgraded


class PasswordHasher:
    """Hashes and verifies passwords in worker threads.

    Verification of an unknown user runs against a dummy hash made with the
    same parameters, so a failed login costs the same whether or not the
    account exists.
    """

    def __init__(self, *, memory_cost: int, time_cost: int, threads: int) -> None:
        self._context = PasswordHash(
            (
                Argon2Hasher(memory_cost=memory_cost, time_cost=time_cost, parallelism=1),
                BcryptHasher(),
            )
        )
        self._limiter = anyio.CapacityLimiter(threads)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(
            self._context.hash, password, limiter=self._limiter
        )

    async def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (``None``: an unknown user)."""
        if hashed is None:
            await anyio.to_thread.run_sync(
                self._verify_sync, password, await self._dummy(), limiter=self._limiter
            )
            return Verification(valid=False)
        return await anyio.to_thread.run_sync(
            self._verify_sync, password, hashed, limiter=self._limiter
        )

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(32))
        return self._dummy_hash

    def _verify_sync(self, password: str, hashed: str) -> Verification:
        if hashed.startswith("$2") and len(password.encode()) > BCRYPT_MAX_BYTES:
            # bcrypt cannot check more than 72 bytes: such a password is simply wrong.
            return Verification(valid=False)
        try:
            valid, updated = self._context.verify_and_update(password, hashed)
        except (ValueError, TypeError):
            return Verification(valid=False)
        return Verification(valid=valid, new_hash=updated if valid else None)


def create_password_hasher(*, memory_cost: int, time_cost: int, threads: int) -> PasswordHasher:
    return PasswordHasher(memory_cost=memory_cost, time_cost=time_cost, threads=threads)


__all__ = ["PasswordHasher", "Verification", "create_password_hasher"]
