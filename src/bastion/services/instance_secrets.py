"""Secrets Bastion generates once and shares between workers through the database."""

from __future__ import annotations

import secrets

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import InstanceSecret

TOKEN_HASH_KEY = "token_hash_key"


async def get_or_create(db: AsyncSession, name: str) -> bytes:
    """Return the named 256-bit secret, creating it on first use (race-safe)."""
    value = await db.scalar(select(InstanceSecret.value).where(InstanceSecret.name == name))
    if value is None:
        candidate = secrets.token_hex(32)
        try:
            async with db.begin_nested():
                db.add(InstanceSecret(name=name, value=candidate))
        except IntegrityError:
            value = await db.scalar(
                select(InstanceSecret.value).where(InstanceSecret.name == name)
            )
        else:
            value = candidate
    return bytes.fromhex(str(value))


async def token_hash_key(db: AsyncSession, secret_key: SecretStr | None) -> bytes:
    """The key opaque tokens are hashed under: ``BASTION_SECRET_KEY``, else the generated one."""
    if secret_key is not None:
        return secret_key.get_secret_value().encode()
    return await get_or_create(db, TOKEN_HASH_KEY)
