"""Authorization codes (RFC 6749 4.1, RFC 7636): random, stored as an HMAC, single use, short.

A code is bound to its client, its exact redirect URI, a PKCE S256
challenge and the resource (RFC 8707) its access token is to be for. It is
spent by one conditional UPDATE, so of two concurrent redemptions exactly
one wins. Presenting a spent code again revokes the session its first
redemption opened (RFC 6749 4.1.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import AuthorizationCode, utcnow
from bastion.errors import InvalidGrant, InvalidTarget, NotFound
from bastion.scopes import format_scope, parse_scope
from bastion.security.opaque_tokens import TokenDigester, generate
from bastion.services import audit, sessions
from bastion.services.auth_state import AuthState

CODE_PREFIX = "bac_"
# RFC 7636 4.1: 43-128 characters of the unreserved set.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest
# A spent code is remembered this long past its expiry, so that a replay still revokes.
REPLAY_MEMORY = timedelta(days=1)


def s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What the user approved at /authorize, carried by the code to the token endpoint."""

    client_id: str
    user_id: str
    redirect_uri: str
    scopes: frozenset[str]
    code_challenge: str
    nonce: str | None
    auth_time: datetime
    browser_session_id: str | None = None
    resource: str | None = None  # RFC 8707: the API the access token is for; None: Bastion


async def issue(db: AsyncSession, *, digester: TokenDigester, grant: CodeGrant, ttl: int) -> str:
    code = generate(CODE_PREFIX)
    now = utcnow()
    db.add(AuthorizationCode(
        code_hash=digester.digest(code), client_id=grant.client_id, user_id=grant.user_id,
        redirect_uri=grant.redirect_uri, scopes=format_scope(grant.scopes),
        code_challenge=grant.code_challenge, nonce=grant.nonce, resource=grant.resource,
        browser_session_id=grant.browser_session_id, auth_time=grant.auth_time,
        created_at=now, expires_at=now + timedelta(seconds=ttl),
    ))
    await db.flush()
    return code


async def redeem(
    db: AsyncSession, state: AuthState, *, digester: TokenDigester, code: str, client_id: str,
    redirect_uri: str | None, code_verifier: str | None, resource: str | None, ip: str | None,
) -> tuple[AuthorizationCode, CodeGrant]:
    """Spend ``code``; its row (to record the session it opens) and what it grants.

    Every failure is ``invalid_grant``, except a ``resource`` other than the one the
    code is bound to (RFC 8707 ``invalid_target``); a failed check still spends the code.
    """
    if not code.startswith(CODE_PREFIX) or len(code) > 128:
        raise InvalidGrant("unknown authorization code")
    now = utcnow()
    code_hash = digester.digest(code)
    row = await db.scalar(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .returning(AuthorizationCode)
    )
    if row is None:
        await _reject_reuse(db, state, code_hash=code_hash, ip=ip)
    failure = _mismatch(row, now, client_id, redirect_uri, code_verifier)
    if failure is not None:
        raise InvalidGrant(failure, keep_writes=True)  # the code stays spent
    if resource is not None and resource != row.resource:
        raise InvalidTarget("resource differs from the authorization request's", keep_writes=True)
    grant = CodeGrant(
        client_id=row.client_id, user_id=row.user_id, redirect_uri=row.redirect_uri,
        scopes=parse_scope(row.scopes), code_challenge=row.code_challenge, nonce=row.nonce,
        auth_time=row.auth_time, browser_session_id=row.browser_session_id,
        resource=row.resource,
    )
    return row, grant


def _mismatch(
    row: AuthorizationCode, now: datetime, client_id: str, redirect_uri: str | None,
    code_verifier: str | None,
) -> str | None:
    """Why the code may not be redeemed by this request, or None."""
    if row.expires_at <= now:
        return "the authorization code has expired"
    if not hmac.compare_digest(row.client_id, client_id):
        return "the authorization code was issued to another client"
    if redirect_uri != row.redirect_uri:
        return "redirect_uri differs from the authorization request's"
    if code_verifier is None or not CODE_VERIFIER.fullmatch(code_verifier):
        return "code_verifier is missing or malformed (RFC 7636: 43-128 characters)"
    if not hmac.compare_digest(s256(code_verifier), row.code_challenge):
        return "code_verifier does not match the code_challenge"
    return None


async def _reject_reuse(
    db: AsyncSession, state: AuthState, *, code_hash: str, ip: str | None
) -> NoReturn:
    known = await db.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
    )
    if known is None:
        raise InvalidGrant("unknown authorization code")
    if known.session_id is not None:
        try:
            await sessions.revoke_session(db, state, session_id=known.session_id)
        except NotFound:
            pass
    audit.record(
        db, "authorization_code_reused", user_id=known.user_id, ip=ip,
        detail={"client_id": known.client_id, "session_id": known.session_id or ""},
    )
    raise InvalidGrant("authorization code already used; what it issued is revoked",
                       keep_writes=True)


async def discard_of_browser_session(db: AsyncSession, *, browser_session_id: str) -> None:
    """Forget the codes a browser session was given and no client has redeemed yet."""
    await _discard_unredeemed(db, AuthorizationCode.browser_session_id == browser_session_id)


async def discard_of_client(db: AsyncSession, *, user_id: str, client_id: str) -> None:
    """Forget the codes ``client_id`` got for ``user_id`` and has not redeemed yet."""
    await _discard_unredeemed(
        db, AuthorizationCode.user_id == user_id, AuthorizationCode.client_id == client_id
    )


async def _discard_unredeemed(db: AsyncSession, *conditions: ColumnElement[bool]) -> None:
    # Deleted, not marked spent: presenting one later is an unknown code, not a replay.
    await db.execute(
        delete(AuthorizationCode).where(*conditions, AuthorizationCode.used_at.is_(None))
    )


async def purge_expired(db: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete codes expired longer ago than :data:`REPLAY_MEMORY`."""
    cutoff = (now or utcnow()) - REPLAY_MEMORY
    result = await db.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
