"""The security audit trail: events written in the same transaction as what they record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.engine import before_commit
from bastion.db.models import AuditEvent, new_id, utcnow
from bastion.db.pagination import paginate

EVENTS: Final = frozenset(
    {
        "register",
        "login_succeeded",
        "login_failed",
        "login_throttled",
        "token_refreshed",
        "refresh_reuse_detected",
        "logout",
        "password_changed",
        "api_key_created",
        "api_key_revoked",
        "role_changed",
        "user_disabled",
        "user_deleted",
        "email_verification_sent",
        "email_verified",
        "password_reset_requested",
        "password_reset",
        "mfa_enrolment_started",
        "mfa_enabled",
        "mfa_disabled",
        "mfa_reset",
        "mfa_required",
        "mfa_failed",
        "recovery_code_used",
        "scope_created",
        "role_created",
        "role_updated",
        "role_deleted",
        "resource_server_created",
        "resource_server_deleted",
        "client_created",
        "client_updated",
        "client_deleted",
        "client_secret_rotated",
        "consent_granted",
        "consent_revoked",
        "authorization_code_reused",
    }
)


PENDING = "bastion.audit.pending"
_INSERT = insert(AuditEvent)  # built once: a prebuilt statement keeps its SQL cache key


def record(
    db: AsyncSession,
    event: str,
    *,
    user_id: str | None,
    ip: str | None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Note ``event``; it is written, in one insert with the unit's other events, at commit."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    pending = db.info.get(PENDING)
    if pending is None:
        pending = db.info[PENDING] = []
        before_commit(db, partial(_write, db))
    pending.append(
        {
            "id": new_id(),
            "at": utcnow(),
            "event": event,
            "user_id": user_id,
            "ip": ip,
            "detail": json.dumps(dict(detail), sort_keys=True) if detail else None,
        }
    )


async def _write(db: AsyncSession) -> None:
    rows = db.info.pop(PENDING, None)
    if rows:
        connection = await db.connection()
        await connection.execute(_INSERT, rows)


async def list_events(
    db: AsyncSession,
    *,
    user_id: str | None,
    event: str | None,
    limit: int,
    offset: int,
) -> tuple[list[AuditEvent], int]:
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(AuditEvent.user_id == user_id)
    if event is not None:
        conditions.append(AuditEvent.event == event)
    query = select(AuditEvent).where(*conditions).order_by(AuditEvent.at.desc(), AuditEvent.id)
    return await paginate(db, query, limit=limit, offset=offset)


async def purge_older_than(db: AsyncSession, *, days: int, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = await db.execute(delete(AuditEvent).where(AuditEvent.at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
