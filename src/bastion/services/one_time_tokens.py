"""Single-use tokens (email verification, password reset, MFA login): issue, spend once, purge.

Each is random and prefixed by its purpose; only its HMAC is stored. Spending is
one conditional UPDATE, so of two concurrent uses of one token exactly one wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import String, delete, insert, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bastion.db.models import OneTimeToken, User, UTCDateTime, new_id, utcnow
from bastion.security.opaque_tokens import TokenDigester, generate

VERIFY_EMAIL: Final = "verify_email"
PASSWORD_RESET: Final = "password_reset"
MFA_LOGIN: Final = "mfa_login"
PREFIXES: Final = {VERIFY_EMAIL: "bsv_", PASSWORD_RESET: "bsp_", MFA_LOGIN: "bsm_"}
MAX_LENGTH = 128
_INSERT = insert(OneTimeToken)  # built once: a prebuilt statement keeps its SQL cache key
_COLUMNS = (
    "id", "user_id", "purpose", "token_hash", "email", "payload", "created_at", "expires_at",
    "used_at",
)


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What a live token stood for."""

    user_id: str
    email: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)


def _digest(digester: TokenDigester, purpose: str, token: str) -> str | None:
    """The stored hash of ``token``, or None when it cannot be a token of ``purpose``."""
    if not token.startswith(PREFIXES[purpose]) or len(token) > MAX_LENGTH:
        return None
    return digester.digest(token)


def _redeemed(row: Any) -> Redeemed:
    return Redeemed(
        user_id=row.user_id, email=row.email, payload=json.loads(row.payload or "{}")
    )


def new_token(digester: TokenDigester, purpose: str) -> tuple[str, str]:
    """A fresh token of ``purpose`` and its hash."""
    token = generate(PREFIXES[purpose])
    return token, digester.digest(token)


async def store(
    db: AsyncSession,
    *,
    purpose: str,
    token_hash: str,
    user_id: str,
    ttl: int,
    email: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Keep the hash of a token made by :func:`new_token`, valid for ``ttl`` seconds."""
    now = utcnow()
    connection = await db.connection()
    await connection.execute(
        _INSERT,
        {
            "id": new_id(),
            "user_id": user_id,
            "purpose": purpose,
            "token_hash": token_hash,
            "email": email,
            "payload": json.dumps(dict(payload), sort_keys=True) if payload else None,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
            "used_at": None,
        },
    )


async def store_for_address(
    db: AsyncSession, *, purpose: str, token_hash: str, address: str, ttl: int
) -> None:
    """Keep a token for the account whose canonical email is ``address``, if there is one.

    One INSERT ... SELECT that adds a row or none: the same statement, and the
    same work, whether or not the address names an account.
    """
    now = utcnow()
    rows = select(
        literal(new_id(), String),
        User.id,
        literal(purpose, String),
        literal(token_hash, String),
        literal(address, String),
        null(),
        literal(now, UTCDateTime),
        literal(now + timedelta(seconds=ttl), UTCDateTime),
        null(),
    ).where(User.email_canonical == address)
    await db.execute(insert(OneTimeToken).from_select(_COLUMNS, rows))


async def issue(
    db: AsyncSession,
    *,
    digester: TokenDigester,
    purpose: str,
    user_id: str,
    ttl: int,
    email: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> str:
    """A new token of ``purpose`` for ``user_id``; only its hash is kept."""
    token, token_hash = new_token(digester, purpose)
    await store(
        db, purpose=purpose, token_hash=token_hash, user_id=user_id, ttl=ttl, email=email,
        payload=payload,
    )
    return token


def _live(purpose: str, token_hash: str, now: datetime) -> list[Any]:
    return [
        OneTimeToken.token_hash == token_hash,
        OneTimeToken.purpose == purpose,
        OneTimeToken.used_at.is_(None),
        OneTimeToken.expires_at > now,
    ]


async def spend(
    db: AsyncSession, *, digester: TokenDigester, purpose: str, token: str
) -> Redeemed | None:
    """Use ``token`` up; None when it is unknown, of another purpose, spent or expired."""
    token_hash = _digest(digester, purpose, token)
    if token_hash is None:
        return None
    now = utcnow()
    result = await db.execute(
        update(OneTimeToken)
        .where(*_live(purpose, token_hash, now))
        .values(used_at=now)
        .returning(OneTimeToken.user_id, OneTimeToken.email, OneTimeToken.payload)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    return _redeemed(row) if row is not None else None


async def peek(
    connection: AsyncConnection, *, digester: TokenDigester, purpose: str, token: str
) -> Redeemed | None:
    """What a live ``token`` stands for, without spending it (a read before slow work)."""
    token_hash = _digest(digester, purpose, token)
    if token_hash is None:
        return None
    row = (
        await connection.execute(
            select(OneTimeToken.user_id, OneTimeToken.email, OneTimeToken.payload).where(
                *_live(purpose, token_hash, utcnow())
            )
        )
    ).first()
    return _redeemed(row) if row is not None else None


async def spend_all(db: AsyncSession, *, purpose: str, user_id: str) -> None:
    """Use up every live token of ``purpose`` of ``user_id`` (one reset voids the others)."""
    await db.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,
            OneTimeToken.purpose == purpose,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def purge_expired(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete tokens that expired or were used."""
    now = now or utcnow()
    result = await db.execute(
        delete(OneTimeToken).where(
            or_(OneTimeToken.expires_at <= now, OneTimeToken.used_at.is_not(None))
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
