"""Proving an address and recovering an account: email verification and password reset."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from bastion.api.deps import Client, DbSession, RuntimeDep, requires
from bastion.api.responses import errors
from bastion.api.schemas import Accepted, LinkTokenIn, PasswordResetIn, PasswordResetRequest
from bastion.runtime import Runtime
from bastion.scopes import ME
from bastion.services import email_verification, password_reset, users
from bastion.services.account_kit import AccountKit
from bastion.services.principals import Principal

router = APIRouter(prefix="/auth", tags=["accounts"])
RESET_ACCEPTED = "if an account has this address, a link to reset its password is on its way"
VERIFICATION_SENT = "a verification link is on its way to your address"


async def account_kit(runtime: RuntimeDep) -> AccountKit:
    return kit_of(runtime)


def kit_of(runtime: Runtime) -> AccountKit:
    if runtime.account_kit is None:
        raise RuntimeError("the runtime was built without its account kit")
    return runtime.account_kit


Kit = Annotated[AccountKit, Depends(account_kit)]


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(401, 403, 409, 429),
)
async def request_verification(
    principal: Annotated[Principal, requires(ME)],
    db: DbSession,
    runtime: RuntimeDep,
    kit: Kit,
    client: Client,
) -> Accepted:
    """Mail a link that verifies the caller's address (409 when it is verified already)."""
    user = await users.get_user(db, principal.user.id)
    await email_verification.request_verification(
        db, kit, digester=runtime.digester, user=user, ip=client.ip
    )
    return Accepted(detail=VERIFICATION_SENT)


@router.post("/verify-email", status_code=204, responses=errors(400, 413, 422))
async def verify_email(
    body: LinkTokenIn, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Spend the token of a verification link: the address it was sent to is verified."""
    await email_verification.verify(
        db, runtime.state, digester=runtime.digester, token=body.token, ip=client.ip
    )


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(400, 413, 422, 429),
)
async def request_password_reset(
    body: PasswordResetRequest, db: DbSession, runtime: RuntimeDep, kit: Kit, client: Client
) -> Accepted:
    """The same answer, in the same time, whether or not an account has this address."""
    await password_reset.request_reset(
        db, kit, digester=runtime.digester, email=str(body.email), ip=client.ip
    )
    return Accepted(detail=RESET_ACCEPTED)


@router.post("/password-reset", status_code=204, responses=errors(400, 413, 422))
async def reset_password(
    body: PasswordResetIn, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Spend a reset token and set the new password; every session of the account ends."""
    await password_reset.reset_password(
        db,
        runtime.state,
        read_engine=runtime.read_engine,
        digester=runtime.digester,
        passwords=runtime.passwords,
        token=body.token,
        new_password=body.new_password,
        ip=client.ip,
    )
