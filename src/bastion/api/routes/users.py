"""The caller's own account, and profiles by id."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Response

from bastion.api.deps import Client, DbSession, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import AUTH_ERRORS, errors
from bastion.api.routes.account_recovery import kit_of
from bastion.api.schemas import AccountDeletion, PasswordChange, ProfilePatch, UserOut
from bastion.errors import NotFound
from bastion.scopes import ME, USERS_READ
from bastion.services import email_verification, users
from bastion.services.auth_state import UserView
from bastion.services.principals import Principal

router = APIRouter(prefix="/users", tags=["users"])
Me = Annotated[Principal, requires(ME)]


@lru_cache(maxsize=4096)
def _user_json(user: UserView) -> bytes:
    """A user view's JSON, rendered once per cached view (the hot path of ``/users/me``)."""
    return UserOut.model_validate(user, from_attributes=True).model_dump_json().encode()


@router.get("/me", response_model=UserOut, responses=AUTH_ERRORS)
async def read_me(principal: Me) -> Response:
    return Response(_user_json(principal.user), media_type="application/json")


@router.patch(
    "/me", response_model=UserOut, responses=errors(400, 401, 403, 409, 413, 422, 429)
)
async def update_me(
    body: ProfilePatch, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> object:
    """A new email is unverified until the link mailed to it is opened."""
    user = await users.get_user(db, principal.user.id)
    address = user.email_canonical
    updated = await users.update_profile(
        db,
        runtime.state,
        passwords=runtime.passwords,
        user=user,
        email=str(body.email) if body.email is not None else None,
        full_name=body.full_name,
        full_name_set="full_name" in body.model_fields_set,
        current_password=body.current_password,
    )
    if updated.email_canonical != address:
        await email_verification.send_verification(
            db, kit_of(runtime), digester=runtime.digester, user=updated, ip=client.ip
        )
    return updated


@router.post(
    "/me/password", status_code=204, responses=errors(400, 401, 403, 413, 422, 429)
)
async def change_password(
    body: PasswordChange, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Set a new password; every other session of the account ends."""
    await users.change_password(
        db,
        runtime.state,
        passwords=runtime.passwords,
        user=await users.get_user(db, principal.user.id),
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session_id=principal.session_id,
        ip=client.ip,
    )


@router.delete("/me", status_code=204, responses=errors(400, 401, 403, 413, 422, 429))
async def delete_me(
    body: AccountDeletion, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Delete the account with its sessions, API keys and todos."""
    user = await users.get_user(db, principal.user.id)
    await users.require_password(runtime.passwords, user=user, password=body.password)
    await users.delete_user(db, runtime.state, user=user, ip=client.ip, actor_id=user.id)


@router.get("/{user_id}", response_model=UserOut, responses=errors(401, 403, 404, 429))
async def read_user(
    user_id: ObjectId, principal: Annotated[Principal, requires()], db: DbSession
) -> object:
    """Your own profile, or anyone's with ``users:read``; others do not exist for you."""
    if user_id == principal.user.id:
        return principal.user
    if USERS_READ not in principal.scopes:
        raise NotFound("user not found")
    return await users.get_user(db, user_id)
