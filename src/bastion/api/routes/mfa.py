"""The second factor: TOTP enrolment and removal by its owner, and reset by an administrator."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from bastion.api.deps import Client, DbSession, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.routes.account_recovery import Kit
from bastion.api.schemas import CodeIn, MfaDisable, RecoveryCodesOut, TotpEnrolment
from bastion.scopes import ME, USERS_WRITE
from bastion.services import mfa, users
from bastion.services.principals import Principal

router = APIRouter(prefix="/users/me/mfa", tags=["users"])
admin_router = APIRouter(prefix="/admin", tags=["admin"])
Me = Annotated[Principal, requires(ME)]


@router.post("/totp", response_model=TotpEnrolment, responses=errors(401, 403, 409, 429))
async def enrol_totp(
    principal: Me, db: DbSession, kit: Kit, client: Client
) -> TotpEnrolment:
    """Start TOTP enrolment: the secret, shown once, to add to an authenticator app.

    The second factor is on only once ``/confirm`` has seen a code made from it.
    """
    user = await users.get_user(db, principal.user.id)
    enrolment = await mfa.start_enrolment(db, kit, user=user, ip=client.ip)
    return TotpEnrolment(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_code=enrolment.qr_code
    )


@router.post(
    "/totp/confirm",
    response_model=RecoveryCodesOut,
    responses=errors(400, 401, 403, 404, 409, 413, 422, 429),
)
async def confirm_totp(
    body: CodeIn, principal: Me, db: DbSession, runtime: RuntimeDep, kit: Kit, client: Client
) -> RecoveryCodesOut:
    """Turn the second factor on with a first code; answers 10 recovery codes, shown once."""
    user = await users.get_user(db, principal.user.id)
    codes = await mfa.confirm(
        db, kit, digester=runtime.digester, user=user, code=body.code, ip=client.ip
    )
    return RecoveryCodesOut(recovery_codes=codes)


@router.delete("/totp", status_code=204, responses=errors(400, 401, 403, 404, 413, 422, 429))
async def disable_totp(
    body: MfaDisable, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Turn the second factor off; the account's password is required."""
    user = await users.get_user(db, principal.user.id)
    await users.require_password(runtime.passwords, user=user, password=body.password)
    await mfa.disable(db, user_id=user.id, ip=client.ip)


@admin_router.delete(
    "/users/{user_id}/mfa", status_code=204, responses=errors(401, 403, 404, 429)
)
async def reset_mfa(
    user_id: ObjectId,
    principal: Annotated[Principal, requires(USERS_WRITE)],
    db: DbSession,
    client: Client,
) -> None:
    """Remove a user's second factor (a lost device); they log in with the password again."""
    await mfa.reset(db, user_id=user_id, ip=client.ip, actor_id=principal.user.id)
