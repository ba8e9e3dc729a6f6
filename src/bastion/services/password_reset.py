"""Passwords set without the old one: a reset link by mail, or an administrator.

A reset request answers the same whether or not an account has the address:
both paths read the account, make a token, run the same INSERT ... SELECT
(which adds a row only for an account) and write an audit event, in one
commit; only a known address gets the mail, which is sent after the response. Setting a password hashes it before the write transaction
opens (on SQLite that transaction holds the database's write lock) and ends
every session of the account.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import User
from bastion.errors import InvalidLinkToken, NotFound
from bastion.security.opaque_tokens import TokenDigester
from bastion.security.password_policy import check_password
from bastion.security.passwords import PasswordHasher
from bastion.services import audit, email_verification, one_time_tokens
from bastion.services.account_kit import AccountKit
from bastion.services.auth_state import AuthState
from bastion.services.sessions import revoke_user_sessions
from bastion.services.users import canonical


async def request_reset(
    db: AsyncSession,
    kit: AccountKit,
    *,
    digester: TokenDigester,
    email: str,
    ip: str | None,
) -> None:
    """Mail a reset link to the account with this address, if there is one."""
    address = canonical(email)
    await kit.reset_ip_quota.take(ip or "unknown")
    await kit.address_quota.take(f"reset:{address}")
    row = (
        await db.execute(
            select(User.id, User.username, User.email).where(User.email_canonical == address)
        )
    ).first()
    token, token_hash = one_time_tokens.new_token(digester, one_time_tokens.PASSWORD_RESET)
    await one_time_tokens.store_for_address(
        db,
        purpose=one_time_tokens.PASSWORD_RESET,
        token_hash=token_hash,
        address=address,
        ttl=kit.reset_ttl,
    )
    audit.record(
        db, "password_reset_requested", user_id=row.id if row is not None else None, ip=ip
    )
    if row is not None:
        kit.mail_link(
            db, "password_reset", to=row.email, username=row.username,
            base=kit.password_reset_url, token=token, ttl=kit.reset_ttl,
        )


async def hash_for(
    read_engine: AsyncEngine, passwords: PasswordHasher, *, user_id: str, password: str
) -> str:
    """Check ``password`` against the policy for this account and hash it, with no write open."""
    async with read_engine.connect() as connection:
        row = (
            await connection.execute(
                select(User.username, User.email).where(User.id == user_id)
            )
        ).first()
    if row is None:
        raise NotFound("user not found")
    return await hash_checked(passwords, username=row.username, email=row.email, password=password)


async def hash_checked(
    passwords: PasswordHasher, *, username: str, email: str, password: str
) -> str:
    """The hash of ``password`` once the policy accepts it for this account (both off the loop)."""
    return await passwords.hash(
        password, check=partial(check_password, username=username, email=email)
    )


async def replace_password(
    db: AsyncSession,
    state: AuthState,
    *,
    user: User,
    hashed: str,
    ip: str | None,
    event: str,
    actor_id: str | None = None,
) -> None:
    """Store a new hash, end every session of the account, audit ``event``."""
    user.hashed_password = hashed
    await db.flush()
    ended = await revoke_user_sessions(db, state, user_id=user.id)
    detail: dict[str, object] = {"sessions_ended": len(ended)}
    if actor_id is not None:
        detail["by"] = actor_id
    audit.record(db, event, user_id=user.id, ip=ip, detail=detail)
    on_commit(db, lambda: state.invalidate("user", user.id))


async def reset_password(
    db: AsyncSession,
    state: AuthState,
    *,
    read_engine: AsyncEngine,
    digester: TokenDigester,
    passwords: PasswordHasher,
    token: str,
    new_password: str,
    ip: str | None,
) -> None:
    """Spend a reset token and set the new password; it also proves the address."""
    purpose = one_time_tokens.PASSWORD_RESET
    async with read_engine.connect() as connection:
        pending = await one_time_tokens.peek(
            connection, digester=digester, purpose=purpose, token=token
        )
    if pending is None:
        raise InvalidLinkToken()
    hashed = await hash_for(
        read_engine, passwords, user_id=pending.user_id, password=new_password
    )
    redeemed = await one_time_tokens.spend(db, digester=digester, purpose=purpose, token=token)
    user = await db.get(User, redeemed.user_id) if redeemed is not None else None
    if user is None:  # spent by a concurrent request meanwhile, or the account is gone
        raise InvalidLinkToken()
    await one_time_tokens.spend_all(db, purpose=purpose, user_id=user.id)
    if redeemed is not None and redeemed.email == user.email_canonical:
        email_verification.mark_verified(db, state, user)
    await replace_password(db, state, user=user, hashed=hashed, ip=ip, event="password_reset")


async def set_password(
    db: AsyncSession,
    state: AuthState,
    *,
    read_engine: AsyncEngine,
    passwords: PasswordHasher,
    user_id: str,
    password: str,
    ip: str | None,
    actor_id: str,
) -> None:
    """An administrator (API or CLI) sets the password; every session of the account ends."""
    hashed = await hash_for(read_engine, passwords, user_id=user_id, password=password)
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    await replace_password(
        db, state, user=user, hashed=hashed, ip=ip, event="password_changed", actor_id=actor_id
    )
