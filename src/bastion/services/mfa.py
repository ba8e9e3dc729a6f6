"""The second factor: TOTP enrolment, recovery codes, and checking a code once.

The TOTP secret is stored sealed (AES-GCM, bound to its owner's id); recovery
codes only as HMACs. A TOTP code is accepted once: the time step it matched is
remembered, and a code of that step or an earlier one is refused, with one
conditional UPDATE so that two concurrent uses of one code cannot both pass.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import RecoveryCode, TotpCredential, User, utcnow
from bastion.errors import Conflict, IncorrectCode, NotFound
from bastion.security import totp
from bastion.security.opaque_tokens import TokenDigester
from bastion.services import audit, one_time_tokens
from bastion.services.account_kit import AccountKit

RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_GROUPS = 3  # xxxx-xxxx-xxxx: 12 characters, about 59 bits
Method = Literal["totp", "recovery_code"]


@dataclass(frozen=True, slots=True)
class Enrolment:
    """Shown once: the secret, its ``otpauth://`` URI and that URI as a QR code."""

    secret: str
    otpauth_uri: str
    qr_code: str


def _new_recovery_code() -> str:
    groups = (
        "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4))
        for _ in range(_RECOVERY_GROUPS)
    )
    return "-".join(groups)


def _recovery_digest(digester: TokenDigester, code: str) -> str:
    normalized = code.strip().lower().replace("-", "").replace(" ", "")
    return digester.digest("recovery-code:" + normalized)


async def start_enrolment(
    db: AsyncSession, kit: AccountKit, *, user: User, ip: str | None
) -> Enrolment:
    """A new pending secret (replacing an unconfirmed one); refused while one is confirmed."""
    credential = await db.get(TotpCredential, user.id)
    if credential is not None and credential.confirmed_at is not None:
        raise Conflict("a second factor is already enabled; disable it first")
    secret = totp.new_secret()
    sealed = kit.totp_box.seal(secret, context=user.id)
    if credential is None:
        db.add(TotpCredential(user_id=user.id, secret_encrypted=sealed))
    else:
        credential.secret_encrypted = sealed
        credential.created_at = utcnow()
        credential.last_used_step = None
    await db.flush()
    audit.record(db, "mfa_enrolment_started", user_id=user.id, ip=ip)
    uri = totp.provisioning_uri(secret, account=user.username, issuer=kit.totp_issuer)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_code=totp.qr_code_data_uri(uri))


async def confirm(
    db: AsyncSession,
    kit: AccountKit,
    *,
    digester: TokenDigester,
    user: User,
    code: str,
    ip: str | None,
) -> list[str]:
    """The first code turns the second factor on; returns the recovery codes (shown once)."""
    credential = await db.get(TotpCredential, user.id)
    if credential is None:
        raise NotFound("no enrolment in progress: start one with POST /users/me/mfa/totp")
    if credential.confirmed_at is not None:
        raise Conflict("the second factor is already enabled")
    secret = kit.totp_box.open(credential.secret_encrypted, context=user.id)
    step = totp.matching_step(secret, code.strip())
    if step is None:
        raise IncorrectCode()
    credential.confirmed_at = utcnow()
    credential.last_used_step = step
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.add_all(
        RecoveryCode(user_id=user.id, code_hash=_recovery_digest(digester, recovery))
        for recovery in codes
    )
    await db.flush()
    audit.record(db, "mfa_enabled", user_id=user.id, ip=ip)
    return codes


async def remove(db: AsyncSession, *, user_id: str) -> bool:
    """Delete the TOTP secret and recovery codes; whether there was a second factor."""
    gone = await db.execute(
        delete(TotpCredential)
        .where(TotpCredential.user_id == user_id)
        .returning(TotpCredential.confirmed_at)
    )
    rows = gone.all()
    await db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    return any(row.confirmed_at is not None for row in rows)


async def disable(db: AsyncSession, *, user_id: str, ip: str | None) -> None:
    """The owner turns the second factor off (the caller has checked the password)."""
    if not await remove(db, user_id=user_id):
        raise NotFound("no second factor is enabled")
    audit.record(db, "mfa_disabled", user_id=user_id, ip=ip)


async def reset(db: AsyncSession, *, user_id: str, ip: str | None, actor_id: str) -> None:
    """An administrator removes a user's second factor (a lost device)."""
    if await db.get(User, user_id) is None:
        raise NotFound("user not found")
    if await remove(db, user_id=user_id):
        audit.record(db, "mfa_reset", user_id=user_id, ip=ip, detail={"by": actor_id})


async def challenge(
    db: AsyncSession,
    *,
    digester: TokenDigester,
    user_id: str,
    login: str,
    scope: str | None,
    resource: str | None,
    ttl: int,
    ip: str | None,
) -> str:
    """The ``mfa_token`` of a login whose password was right: bound to the user, the name
    the login used (for its throttle counter) and the scope and resource it asked for."""
    token = await one_time_tokens.issue(
        db,
        digester=digester,
        purpose=one_time_tokens.MFA_LOGIN,
        user_id=user_id,
        ttl=ttl,
        payload={"login": login, "scope": scope, "resource": resource},
    )
    audit.record(db, "mfa_required", user_id=user_id, ip=ip)
    return token


async def verify_code(
    db: AsyncSession, kit: AccountKit, *, digester: TokenDigester, user_id: str, code: str
) -> Method | None:
    """Spend a TOTP code (once per time step) or a recovery code; None when neither fits."""
    credential = await db.get(TotpCredential, user_id)
    if credential is None or credential.confirmed_at is None:
        return None
    candidate = code.strip().replace(" ", "")
    if totp.is_code(candidate):
        secret = kit.totp_box.open(credential.secret_encrypted, context=user_id)
        step = totp.matching_step(secret, candidate)
        if step is None:
            return None
        accepted = await db.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == user_id,
                or_(
                    TotpCredential.last_used_step.is_(None),
                    TotpCredential.last_used_step < step,
                ),
            )
            .values(last_used_step=step)
            .returning(TotpCredential.user_id)
            .execution_options(synchronize_session=False)
        )
        return "totp" if accepted.first() is not None else None
    spent = await db.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _recovery_digest(digester, candidate),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .returning(RecoveryCode.id)
        .execution_options(synchronize_session=False)
    )
    return "recovery_code" if spent.first() is not None else None
