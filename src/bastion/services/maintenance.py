"""Periodic upkeep: reload signing keys, purge ended sessions, expired tokens and old audit events."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.engine import transaction
from bastion.outages import describe, failed_dependency
from bastion.services import (
    audit,
    authorization_codes,
    browser_sessions,
    one_time_tokens,
    sessions,
)
from bastion.services.signing_keys import KeyManager

logger = logging.getLogger(__name__)
PURGE_INTERVAL = 600.0


@dataclass(frozen=True, slots=True)
class PurgeResult:
    sessions_and_tokens: int
    audit_events: int


async def purge(
    sessionmaker: async_sessionmaker[AsyncSession], *, audit_retention_days: int
) -> PurgeResult:
    async with transaction(sessionmaker) as db:
        ended = await sessions.purge_expired(db)
        ended += await one_time_tokens.purge_expired(db)  # used or expired links, mfa_tokens
        ended += await authorization_codes.purge_expired(db)
        ended += await browser_sessions.purge_expired(db)
        old = await audit.purge_older_than(db, days=audit_retention_days)
    return PurgeResult(sessions_and_tokens=ended, audit_events=old)


async def run_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    keys: KeyManager,
    *,
    key_refresh_interval: float,
    audit_retention_days: int,
) -> None:
    """Runs until cancelled; a failed round is logged and retried on the next tick."""
    last_purge = 0.0
    while True:
        await asyncio.sleep(key_refresh_interval)
        try:
            await keys.reload()
            if time.monotonic() - last_purge >= PURGE_INTERVAL:
                result = await purge(sessionmaker, audit_retention_days=audit_retention_days)
                last_purge = time.monotonic()
                logger.info(
                    "purged %d sessions/tokens and %d audit events",
                    result.sessions_and_tokens,
                    result.audit_events,
                )
        except Exception as exc:
            dependency = failed_dependency(exc)
            if dependency is None:
                logger.exception("maintenance round failed")
            else:  # an outage, not a bug: one line, no traceback
                logger.warning(
                    "maintenance round skipped: %s unavailable (%s)", dependency, describe(exc)
                )
