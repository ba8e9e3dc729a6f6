"""The hosted login's browser session.

The cookie holds a random token; only its HMAC is stored. A session ends at
``GET /logout``, at expiry, or when the account is disabled (checked on use).
Ending it also ends the sessions its codes opened and forgets the codes no
client has redeemed yet: a client's refresh token does not outlive the sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import BrowserSession, User, utcnow
from bastion.security.opaque_tokens import TokenDigester, generate
from bastion.services import authorization_codes, sessions
from bastion.services.auth_state import AuthState, UserView

BROWSER_SESSION_PREFIX = "bbs_"


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    user: UserView
    auth_time: datetime


async def start(
    db: AsyncSession, *, digester: TokenDigester, user: UserView, ttl: int,
    current: SignedIn | None = None,
) -> tuple[SignedIn, str]:
    """A browser session for ``user``, who has just signed in: (it, the cookie value).

    Signing in again in a browser already signed in as ``user`` (``current``,
    ``prompt=login``) renews that session, under a new cookie and ``auth_time``:
    what its codes opened stays bound to it, and ends at its logout.
    """
    token = generate(BROWSER_SESSION_PREFIX)
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl)
    row = await db.get(BrowserSession, current.session_id) if current is not None else None
    if row is not None and row.user_id == user.id:
        row.token_hash, row.auth_time, row.expires_at = digester.digest(token), now, expires_at
    else:
        row = BrowserSession(
            token_hash=digester.digest(token), user_id=user.id, auth_time=now,
            expires_at=expires_at,
        )
        db.add(row)
    await db.flush()
    return SignedIn(session_id=row.id, user=user, auth_time=now), token


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


async def end(db: AsyncSession, state: AuthState, *, session_id: str) -> list[str]:
    """End the browser session and what its codes gave clients; the login sessions ended."""
    await db.execute(
        update(BrowserSession)
        .where(BrowserSession.id == session_id, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await authorization_codes.discard_of_browser_session(db, browser_session_id=session_id)
    return await sessions.revoke_browser_logins(db, state, browser_session_id=session_id)


async def purge_expired(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete browser sessions that expired or were ended."""
    result = await db.execute(
        delete(BrowserSession).where(
            or_(BrowserSession.expires_at <= (now or utcnow()), BrowserSession.revoked_at.is_not(None))
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
