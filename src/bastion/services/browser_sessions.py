"""The hosted login's browser session and the consent a user gave a client.

The cookie holds a random token; only its HMAC is stored. A session ends at
``GET /logout``, at expiry, or when the account is disabled (checked on use).
Consent is kept per user and client as the set of scopes allowed: a request
within it asks no more, a wider one asks again and the union is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import BrowserSession, Consent, User, utcnow
from bastion.scopes import format_scope, parse_scope
from bastion.security.opaque_tokens import TokenDigester, generate
from bastion.services import audit
from bastion.services.auth_state import UserView

BROWSER_SESSION_PREFIX = "bbs_"


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    user: UserView
    auth_time: datetime


async def start(
    db: AsyncSession, *, digester: TokenDigester, user_id: str, ttl: int
) -> tuple[str, str]:
    """A new browser session for ``user_id``: (its id, the cookie value)."""
    token = generate(BROWSER_SESSION_PREFIX)
    now = utcnow()
    row = BrowserSession(
        token_hash=digester.digest(token), user_id=user_id, auth_time=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    db.add(row)
    await db.flush()
    return row.id, token


async def current(
    db: AsyncSession, *, digester: TokenDigester, cookie: str | None
) -> SignedIn | None:
    """Who the cookie signs in, while its session and account stand."""
    if not cookie or not cookie.startswith(BROWSER_SESSION_PREFIX) or len(cookie) > 128:
        return None
    row = await db.scalar(
        select(BrowserSession).where(BrowserSession.token_hash == digester.digest(cookie))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    user = await db.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return SignedIn(session_id=row.id, user=UserView.of(user), auth_time=row.auth_time)


async def end(db: AsyncSession, *, session_id: str) -> None:
    await db.execute(
        update(BrowserSession)
        .where(BrowserSession.id == session_id, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def consented(db: AsyncSession, *, user_id: str, client_id: str) -> frozenset[str]:
    row = await db.get(Consent, (user_id, client_id))
    return parse_scope(row.scopes) if row is not None else frozenset()


async def remember_consent(
    db: AsyncSession, *, user_id: str, client_id: str, scopes: frozenset[str], ip: str | None
) -> None:
    row = await db.get(Consent, (user_id, client_id))
    if row is None:
        db.add(Consent(user_id=user_id, client_id=client_id, scopes=format_scope(scopes)))
    else:
        row.scopes = format_scope(parse_scope(row.scopes) | scopes)
    await db.flush()
    audit.record(
        db, "consent_granted", user_id=user_id, ip=ip,
        detail={"client_id": client_id, "scopes": sorted(scopes)},
    )


async def purge_expired(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete browser sessions that expired or were ended."""
    result = await db.execute(
        delete(BrowserSession).where(
            or_(BrowserSession.expires_at <= (now or utcnow()), BrowserSession.revoked_at.is_not(None))
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
