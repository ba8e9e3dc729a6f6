"""Email verification: a link to the address, a token that proves it, the account marked verified.

A token is bound to the address it was sent to: once the account's email
changes, links sent to the old address no longer verify anything.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import User, utcnow
from bastion.errors import Conflict, InvalidLinkToken
from bastion.security.opaque_tokens import TokenDigester
from bastion.services import audit, one_time_tokens
from bastion.services.account_kit import AccountKit
from bastion.services.auth_state import AuthState


async def send_verification(
    db: AsyncSession, kit: AccountKit, *, digester: TokenDigester, user: User, ip: str | None
) -> None:
    """Mail ``user`` a link that verifies their current address (sent after commit)."""
    token = await one_time_tokens.issue(
        db,
        digester=digester,
        purpose=one_time_tokens.VERIFY_EMAIL,
        user_id=user.id,
        ttl=kit.verification_ttl,
        email=user.email_canonical,
    )
    kit.mail_link(
        db, "verify_email", to=user.email, username=user.username, email=user.email,
        base=kit.verify_email_url, token=token, ttl=kit.verification_ttl,
    )
    audit.record(db, "email_verification_sent", user_id=user.id, ip=ip)


async def request_verification(
    db: AsyncSession, kit: AccountKit, *, digester: TokenDigester, user: User, ip: str | None
) -> None:
    """The caller asks for a (new) link; refused when already verified, limited per address."""
    if user.email_verified_at is not None:
        raise Conflict("the email address is already verified")
    await kit.address_quota.take(f"verify:{user.email_canonical}")
    await send_verification(db, kit, digester=digester, user=user, ip=ip)


def mark_verified(db: AsyncSession, state: AuthState, user: User) -> None:
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        on_commit(db, lambda: state.invalidate("user", user.id))


async def verify(
    db: AsyncSession, state: AuthState, *, digester: TokenDigester, token: str, ip: str | None
) -> None:
    """Spend a verification token and mark its account's address verified."""
    redeemed = await one_time_tokens.spend(
        db, digester=digester, purpose=one_time_tokens.VERIFY_EMAIL, token=token
    )
    user = await db.get(User, redeemed.user_id) if redeemed is not None else None
    if redeemed is None or user is None or user.email_canonical != redeemed.email:
        raise InvalidLinkToken()
    mark_verified(db, state, user)
    await db.flush()
    audit.record(db, "email_verified", user_id=user.id, ip=ip)


def vouch(
    db: AsyncSession, state: AuthState, *, user: User, ip: str | None, actor_id: str
) -> None:
    """An administrator confirms the address (of an account made from the command line, say)."""
    mark_verified(db, state, user)
    audit.record(db, "email_verified", user_id=user.id, ip=ip, detail={"by": actor_id})
