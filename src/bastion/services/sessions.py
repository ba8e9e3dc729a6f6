"""Login sessions and their refresh tokens: start, rotate, detect reuse, revoke, purge.

A session is one login. Its id is the ``sid`` of every access token it
issues; its refresh tokens are single use, and presenting a spent one again
(RFC 9700 section 4.14.2) revokes the whole session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import AuthSession, RefreshToken, new_id, utcnow
from bastion.db.pagination import paginate
from bastion.errors import InvalidGrant, NotFound, RefreshTokenReused
from bastion.scopes import format_scope, parse_scope
from bastion.security.opaque_tokens import REFRESH_TOKEN_PREFIX, TokenDigester, generate
from bastion.services import audit
from bastion.services.auth_state import AuthState

USER_AGENT_MAX = 300

# Built once: a prebuilt statement keeps its SQL cache key (~80 µs a login).
_INSERT_SESSION = insert(AuthSession)
_INSERT_REFRESH_TOKEN = insert(RefreshToken)


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a login or a refresh hands out, before the access token is signed."""

    session_id: str
    user_id: str
    scopes: frozenset[str]
    refresh_token: str
    audience: str | None = None  # a resource server's identifier (RFC 8707), else Bastion's own


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    refresh_token_ttl: int
    session_max_lifetime: int


async def _issue_refresh_token(
    db: AsyncSession,
    *,
    digester: TokenDigester,
    session_id: str,
    session_expires_at: datetime,
    scopes: frozenset[str],
    policy: SessionPolicy,
    now: datetime,
) -> str:
    token = generate(REFRESH_TOKEN_PREFIX)
    connection = await db.connection()
    await connection.execute(
        _INSERT_REFRESH_TOKEN,
        {
            "id": new_id(),
            "session_id": session_id,
            "token_hash": digester.digest(token),
            "scopes": format_scope(scopes),
            "created_at": now,
            "expires_at": min(now + timedelta(seconds=policy.refresh_token_ttl),
                              session_expires_at),
        },
    )
    return token


async def start_session(
    db: AsyncSession,
    *,
    digester: TokenDigester,
    policy: SessionPolicy,
    user_id: str,
    scopes: frozenset[str],
    ip: str | None,
    user_agent: str | None,
    audience: str | None = None,
    client_id: str | None = None,
    browser_session_id: str | None = None,
) -> SessionGrant:
    """Open a session and its first refresh token: two Core inserts, no ORM round trip.

    ``client_id`` and ``browser_session_id`` name the OAuth client and the hosted
    login's browser session of a session opened by an authorization code.
    A user deleted since the password was checked fails the foreign key:
    that is an invalid grant, not a server error.
    """
    now = utcnow()
    session_id = new_id()
    expires_at = now + timedelta(seconds=policy.session_max_lifetime)
    connection = await db.connection()
    try:
        await connection.execute(
            _INSERT_SESSION,
            {
                "id": session_id,
                "user_id": user_id,
                "scopes": format_scope(scopes),
                "audience": audience,
                "client_id": client_id,
                "browser_session_id": browser_session_id,
                "created_at": now,
                "last_used_at": now,
                "expires_at": expires_at,
                "ip": ip,
                "user_agent": (user_agent or "")[:USER_AGENT_MAX] or None,
            },
        )
    except IntegrityError as exc:
        raise InvalidGrant("the account is gone") from exc
    token = await _issue_refresh_token(
        db, digester=digester, session_id=session_id, session_expires_at=expires_at,
        scopes=scopes, policy=policy, now=now,
    )
    return SessionGrant(
        session_id=session_id, user_id=user_id, scopes=scopes, refresh_token=token,
        audience=audience,
    )


async def rotate(
    db: AsyncSession,
    state: AuthState,
    *,
    digester: TokenDigester,
    policy: SessionPolicy,
    refresh_token: str,
    ip: str | None,
) -> tuple[SessionGrant, AuthSession]:
    """Spend ``refresh_token`` and issue its successor in the same session.

    The spend is one conditional UPDATE, so of N concurrent refreshes with
    one token exactly one matches a row; the others find it spent and are
    treated as reuse.
    """
    now = utcnow()
    token_hash = digester.digest(refresh_token)
    spent = await db.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.session_id, RefreshToken.scopes)
    )
    row = spent.first()
    if row is None:
        await _reject_refresh(db, state, token_hash=token_hash, ip=ip)
    assert row is not None
    session = await db.get(AuthSession, row.session_id)
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        raise InvalidGrant("the session has ended")
    scopes = parse_scope(row.scopes)
    session.last_used_at = now
    if ip:
        session.ip = ip
    token = await _issue_refresh_token(
        db, digester=digester, session_id=session.id, session_expires_at=session.expires_at,
        scopes=scopes, policy=policy, now=now,
    )
    grant = SessionGrant(
        session_id=session.id, user_id=session.user_id, scopes=scopes, refresh_token=token,
        audience=session.audience,
    )
    return grant, session


async def _reject_refresh(
    db: AsyncSession, state: AuthState, *, token_hash: str, ip: str | None
) -> None:
    known = await db.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    if known is None or known.used_at is None:
        raise InvalidGrant("unknown or expired refresh token")
    session = await db.get(AuthSession, known.session_id)
    if session is not None and session.revoked_at is None:
        session.revoked_at = utcnow()
        on_commit(db, partial(state.invalidate, "session", session.id))
    audit.record(
        db,
        "refresh_reuse_detected",
        user_id=session.user_id if session is not None else None,
        ip=ip,
        detail={"session_id": known.session_id},
    )
    raise RefreshTokenReused(keep_writes=True)


async def session_of_refresh_token(
    db: AsyncSession, *, digester: TokenDigester, refresh_token: str
) -> AuthSession | None:
    session_id = await db.scalar(
        select(RefreshToken.session_id).where(
            RefreshToken.token_hash == digester.digest(refresh_token)
        )
    )
    return await db.get(AuthSession, session_id) if session_id is not None else None


async def revoke_session(
    db: AsyncSession, state: AuthState, *, session_id: str, user_id: str | None = None
) -> AuthSession:
    """End one session (of ``user_id``, when given: other users' sessions do not exist)."""
    session = await db.get(AuthSession, session_id)
    if session is None or (user_id is not None and session.user_id != user_id):
        raise NotFound("session not found")
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        on_commit(db, lambda: state.invalidate("session", session_id))
    return session


async def revoke_user_sessions(
    db: AsyncSession, state: AuthState, *, user_id: str, except_session_id: str | None = None
) -> list[str]:
    conditions = [AuthSession.user_id == user_id]
    if except_session_id is not None:
        conditions.append(AuthSession.id != except_session_id)
    return await _revoke_where(db, state, conditions)


async def revoke_browser_logins(
    db: AsyncSession, state: AuthState, *, browser_session_id: str
) -> list[str]:
    """End the sessions that codes of one hosted-login browser session opened."""
    return await _revoke_where(db, state, [AuthSession.browser_session_id == browser_session_id])


async def revoke_client_sessions(
    db: AsyncSession, state: AuthState, *, user_id: str, client_id: str
) -> list[str]:
    """End every session ``user_id`` opened for the OAuth client ``client_id``."""
    return await _revoke_where(
        db, state, [AuthSession.user_id == user_id, AuthSession.client_id == client_id]
    )


async def _revoke_where(
    db: AsyncSession, state: AuthState, conditions: Sequence[ColumnElement[bool]]
) -> list[str]:
    """End the live sessions matching ``conditions``; their ids."""
    live = [*conditions, AuthSession.revoked_at.is_(None)]
    ids = list(await db.scalars(select(AuthSession.id).where(*live)))
    if ids:
        await db.execute(
            update(AuthSession).where(AuthSession.id.in_(ids)).values(revoked_at=utcnow())
        )
    for session_id in ids:
        on_commit(db, partial(state.invalidate, "session", session_id))
    return ids


async def active_sessions(
    db: AsyncSession, *, user_id: str, limit: int, offset: int
) -> tuple[list[AuthSession], int]:
    query = (
        select(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
        )
        .order_by(AuthSession.created_at.desc(), AuthSession.id)
    )
    return await paginate(db, query, limit=limit, offset=offset)


async def purge_expired(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete refresh tokens past expiry and sessions that ended (expired or revoked)."""
    now = now or utcnow()
    tokens = await db.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now))
    sessions = await db.execute(
        delete(AuthSession).where(
            or_(AuthSession.expires_at <= now, AuthSession.revoked_at.is_not(None))
        )
    )
    return int(getattr(tokens, "rowcount", 0) or 0) + int(getattr(sessions, "rowcount", 0) or 0)
