"""Password hashing: Argon2id through pwdlib, bcrypt for legacy hashes, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

BCRYPT_MAX_BYTES = 72
HASHING_NICENESS = 19
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verification:
    valid: bool
    new_hash: str | None = None  # set when the stored hash should be upgraded


def _lower_thread_priority() -> None:
    """Hashing yields the CPU to the event loop: a login storm must not stall other requests.

    On Linux a thread has its own nice value; elsewhere this is a no-op.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class PasswordHasher:
    """Hashes and verifies passwords in a pool of low-priority worker threads.

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
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="bastion-hash",
            initializer=_lower_thread_priority,
        )
        self._dummy_hash: str | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def hash(self, password: str, *, check: Callable[[str], None] | None = None) -> str:
        """The hash of ``password``; ``check`` (a policy that may raise) runs first, off the
        event loop too, in a thread of normal priority: it is pure Python and holds the GIL,
        and a hashing thread (nice 19) starved of CPU would make the event loop wait for it."""
        if check is not None:
            await asyncio.to_thread(check, password)
        return await self._run(self._context.hash, password)

    async def verify(self, password: str, hashed: str | None) -> Verification:
        """Check ``password`` against ``hashed`` (``None``: an unknown user)."""
        if hashed is None:
            await self._run(self._verify_sync, password, await self._dummy())
            return Verification(valid=False)
        return await self._run(self._verify_sync, password, hashed)

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
