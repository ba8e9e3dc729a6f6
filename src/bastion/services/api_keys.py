"""Personal API keys: created once, shown once, stored as a keyed hash, revocable."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import ApiKey, utcnow
from bastion.db.pagination import paginate
from bastion.errors import NotFound, PermissionDenied
from bastion.scopes import format_scope
from bastion.security.opaque_tokens import (
    API_KEY_PREFIX,
    DISPLAY_PREFIX_LENGTH,
    TokenDigester,
    generate,
)
from bastion.services import audit
from bastion.services.auth_state import AuthState


async def create_key(
    db: AsyncSession,
    *,
    digester: TokenDigester,
    user_id: str,
    name: str,
    scopes: frozenset[str],
    allowed_scopes: frozenset[str],
    expires_in_days: int | None,
    ip: str | None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never stored."""
    if not scopes <= allowed_scopes:
        raise PermissionDenied(
            "scopes beyond your own: " + format_scope(scopes - allowed_scopes)
        )
    secret = generate(API_KEY_PREFIX)
    now = utcnow()
    key = ApiKey(
        user_id=user_id,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        key_hash=digester.digest(secret),
        scopes=format_scope(scopes),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.add(key)
    await db.flush()
    audit.record(
        db, "api_key_created", user_id=user_id, ip=ip,
        detail={"key_id": key.id, "scopes": key.scopes},
    )
    return key, secret


async def list_keys(
    db: AsyncSession, *, user_id: str, limit: int, offset: int
) -> tuple[list[ApiKey], int]:
    query = (
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return await paginate(db, query, limit=limit, offset=offset)


async def revoke_key(
    db: AsyncSession, state: AuthState, *, user_id: str, key_id: str, ip: str | None
) -> None:
    key = await db.get(ApiKey, key_id)
    if key is None or key.user_id != user_id or key.revoked_at is not None:
        raise NotFound("API key not found")
    key.revoked_at = utcnow()
    audit.record(db, "api_key_revoked", user_id=user_id, ip=ip, detail={"key_id": key.id})
    on_commit(db, partial(state.invalidate, "api_key", key.key_hash))
