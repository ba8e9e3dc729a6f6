"""``grant_type=urn:bastion:mfa``: the second step of a login, an ``mfa_token`` and a code.

The token is spent by its first use, right or wrong: each guess at a code
costs a fresh password check. A wrong code counts toward the same failure
limits as a wrong password (the account's counter, whichever name the login
used), and only a right code clears them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import User
from bastion.errors import InvalidGrant, InvalidTarget, Throttled
from bastion.services import audit, mfa, one_time_tokens
from bastion.services.account_kit import AccountKit
from bastion.services.auth_state import UserView
from bastion.services.token_grants import ClientInfo, TokenGrants, TokenSet

MFA_GRANT: Final = "urn:bastion:mfa"


async def mfa_grant(
    db: AsyncSession,
    grants: TokenGrants,
    kit: AccountKit,
    *,
    mfa_token: str,
    code: str,
    client: ClientInfo,
    resource: str | None = None,
) -> TokenSet:
    """The token set of a login whose password was right, once its code is."""
    user, method, pending = await second_factor(
        db, grants, kit, mfa_token=mfa_token, code=code, client=client, resource=resource
    )
    return await grants.finish_login(
        db,
        user=UserView.of(user),
        scope=pending.get("scope"),
        resource=pending.get("resource"),
        client=client,
        method=method,
    )


async def second_factor(
    db: AsyncSession,
    grants: TokenGrants,
    kit: AccountKit,
    *,
    mfa_token: str,
    code: str,
    client: ClientInfo,
    resource: str | None = None,
) -> tuple[User, str, Mapping[str, Any]]:
    """The user, the method (totp or recovery_code) and the pending login of a right code.

    Also the hosted login's second step, which opens a browser session instead of tokens.
    """
    redeemed = await one_time_tokens.spend(
        db, digester=grants.digester, purpose=one_time_tokens.MFA_LOGIN, token=mfa_token
    )
    if redeemed is None:
        raise InvalidGrant("the mfa_token is invalid, expired or already used; sign in again")
    pending = redeemed.payload
    if resource is not None and resource != pending.get("resource"):
        raise InvalidTarget("the mfa_token is for the resource its login asked for")
    user = await db.get(User, redeemed.user_id)
    if user is None or not user.is_active:
        raise InvalidGrant("the account is disabled or gone", keep_writes=True)
    login = str(pending.get("login") or user.username)
    try:
        await grants.throttle.check(username=login, ip=client.ip, account_id=user.id)
    except Throttled:
        audit.record(db, "login_throttled", user_id=user.id, ip=client.ip, detail={"mfa": True})
        raise
    method = await mfa.verify_code(
        db, kit, digester=grants.digester, user_id=user.id, code=code
    )
    if method is None:
        await grants.throttle.failed(username=login, ip=client.ip, account_id=user.id)
        grants.observe("login_mfa_failed")
        audit.record(db, "mfa_failed", user_id=user.id, ip=client.ip)
        raise InvalidGrant("incorrect or already used code; sign in again", keep_writes=True)
    await grants.throttle.succeeded(username=login, ip=client.ip, account_id=user.id)
    if method == "recovery_code":
        audit.record(db, "recovery_code_used", user_id=user.id, ip=client.ip)
    grants.observe("login_succeeded")
    return user, method, pending
