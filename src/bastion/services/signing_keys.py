"""The signing-key lifecycle in the database: first key, rotation, retirement, reload."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.engine import transaction
from bastion.db.models import SigningKey, utcnow
from bastion.security.signing_keys import (
    KeyMaterial,
    KeyRing,
    generate_private_pem,
    load_key,
    new_kid,
)

UNKNOWN_KID_RELOAD_INTERVAL = 5.0
MAX_PUBLISH_AFTER_RETIREMENT = timedelta(days=1, minutes=5)  # longest access-token TTL + slack


async def ensure_active_key(db: AsyncSession, *, algorithm: str) -> None:
    """Create a signing key if none is active (first start, or a new algorithm)."""
    active = await db.scalar(
        select(SigningKey.kid).where(
            SigningKey.retired_at.is_(None), SigningKey.algorithm == algorithm
        )
    )
    if active is None:
        await rotate_key(db, algorithm=algorithm, publish_for=MAX_PUBLISH_AFTER_RETIREMENT)


async def rotate_key(db: AsyncSession, *, algorithm: str, publish_for: timedelta) -> str:
    """Make a new key active; retired keys stay published for ``publish_for``.

    ``publish_for`` must cover the access-token lifetime plus the interval at
    which other processes reload keys (they may sign with the old key until then).
    """
    now = utcnow()
    for key in await db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        key.retired_at = now
        key.publish_until = now + publish_for
    kid = new_kid()
    db.add(SigningKey(kid=kid, algorithm=algorithm, private_pem=generate_private_pem(algorithm)))
    await db.flush()
    return kid


async def purge_expired_keys(db: AsyncSession, *, now: datetime) -> int:
    result = await db.execute(
        delete(SigningKey).where(
            SigningKey.publish_until.is_not(None), SigningKey.publish_until <= now
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


class NoActiveKey(RuntimeError):
    """The database holds no active signing key (none was made yet)."""


async def load_key_ring(db: AsyncSession, *, now: datetime) -> KeyRing:
    rows = (
        await db.scalars(
            select(SigningKey)
            .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now))
            .order_by(SigningKey.created_at)
        )
    ).all()
    keys: dict[str, KeyMaterial] = {}
    active: KeyMaterial | None = None
    for row in rows:
        key = load_key(
            kid=row.kid,
            algorithm=row.algorithm,
            private_pem=row.private_pem,
            retired=row.retired_at is not None,
            publish_until=row.publish_until,
        )
        keys[key.kid] = key
        if not key.retired:
            active = key
    if active is None:
        raise NoActiveKey("no active signing key; run `bastion db upgrade` and start again")
    return KeyRing(active=active, keys=keys)


class KeyManager:
    """Holds the current :class:`KeyRing` and reloads it from the database.

    Reloads happen every ``refresh_interval`` seconds (so a rotation made by
    another process is picked up within that bound) and, at most every few
    seconds, when a token names a ``kid`` this process has not seen yet.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        algorithm: str,
        refresh_interval: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._algorithm = algorithm
        self._refresh_interval = refresh_interval
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0

    @property
    def ring(self) -> KeyRing:
        if self._ring is None:
            raise RuntimeError("key ring not loaded")
        return self._ring

    async def start(self) -> None:
        async with transaction(self._sessionmaker) as db:
            await ensure_active_key(db, algorithm=self._algorithm)
        await self.reload()

    async def reload(self) -> KeyRing:
        async with transaction(self._sessionmaker) as db:
            now = utcnow()
            await purge_expired_keys(db, now=now)
            self._ring = await load_key_ring(db, now=now)
        self._loaded_at = time.monotonic()
        return self._ring

    async def reload_if_due(self) -> None:
        if time.monotonic() - self._loaded_at >= self._refresh_interval:
            await self.reload()

    async def reload_for_unknown_kid(self) -> bool:
        """Reload if the last reload is old enough; True when a reload happened."""
        if time.monotonic() - self._loaded_at < UNKNOWN_KID_RELOAD_INTERVAL:
            return False
        await self.reload()
        return True


def publish_window(*, access_token_ttl: int, key_refresh_interval: float) -> timedelta:
    """How long a retired key stays published: its last token's life plus reload lag."""
    return timedelta(seconds=access_token_ttl + key_refresh_interval + 60)
