"""Administration: users, their roles and sessions, and the audit trail."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter

from bastion.api.deps import Client, DbSession, Pagination, RuntimeDep, requires
from bastion.api.params import EventFilter, IdFilter, ObjectId, SearchText
from bastion.api.responses import errors
from bastion.api.schemas import AdminUserPatch, AuditEventOut, Page, UserOut
from bastion.scopes import AUDIT_READ, USERS_READ, USERS_WRITE
from bastion.services import audit, password_reset, sessions, users
from bastion.services.principals import Principal

router = APIRouter(prefix="/admin", tags=["admin"])
UserReader = Annotated[Principal, requires(USERS_READ)]
UserWriter = Annotated[Principal, requires(USERS_WRITE)]


@router.get("/users", response_model=Page[UserOut], responses=errors(401, 403, 422, 429))
async def list_users(
    principal: UserReader, db: DbSession, page: Pagination, q: SearchText = None
) -> Page[UserOut]:
    rows, total = await users.search_users(db, query=q, limit=page.limit, offset=page.offset)
    return Page(
        items=[UserOut.model_validate(row, from_attributes=True) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=errors(400, 401, 403, 404, 413, 422, 429),
)
async def update_user(
    user_id: ObjectId,
    body: AdminUserPatch,
    principal: UserWriter,
    db: DbSession,
    runtime: RuntimeDep,
    client: Client,
) -> object:
    """Change roles, enable/disable or set the password.

    Disabling ends the user's sessions and keys at once; a new password ends the sessions.
    """
    hashed = None
    if body.password is not None:  # hashed before the write transaction opens
        hashed = await password_reset.hash_for(
            runtime.read_engine, runtime.passwords, user_id=user_id, password=body.password
        )
    user = await users.get_user(db, user_id)
    if body.roles is not None:
        await users.set_roles(
            db, runtime.state, user=user, roles=body.roles, ip=client.ip,
            actor_id=principal.user.id,
        )
    if body.is_active is not None:
        await users.set_active(
            db, runtime.state, user=user, active=body.is_active, ip=client.ip,
            actor_id=principal.user.id,
        )
    if hashed is not None:
        await password_reset.replace_password(
            db, runtime.state, user=user, hashed=hashed, ip=client.ip,
            event="password_changed", actor_id=principal.user.id,
        )
    return user


@router.delete("/users/{user_id}", status_code=204, responses=errors(401, 403, 404, 429))
async def delete_user(
    user_id: ObjectId, principal: UserWriter, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    user = await users.get_user(db, user_id)
    await users.delete_user(db, runtime.state, user=user, ip=client.ip, actor_id=principal.user.id)


@router.delete(
    "/users/{user_id}/sessions", status_code=204, responses=errors(401, 403, 404, 429)
)
async def end_user_sessions(
    user_id: ObjectId, principal: UserWriter, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """End every session of the user."""
    await users.get_user(db, user_id)
    ended = await sessions.revoke_user_sessions(db, runtime.state, user_id=user_id)
    audit.record(
        db, "logout", user_id=user_id, ip=client.ip,
        detail={"sessions": len(ended), "by": principal.user.id},
    )


@router.get(
    "/audit", response_model=Page[AuditEventOut], responses=errors(401, 403, 422, 429)
)
async def list_audit_events(
    principal: Annotated[Principal, requires(AUDIT_READ)],
    db: DbSession,
    page: Pagination,
    user_id: IdFilter = None,
    event: EventFilter = None,
) -> Page[AuditEventOut]:
    rows, total = await audit.list_events(
        db, user_id=user_id, event=event, limit=page.limit, offset=page.offset
    )
    items = [
        AuditEventOut(
            id=row.id,
            at=row.at,
            event=row.event,
            user_id=row.user_id,
            ip=row.ip,
            detail=json.loads(row.detail) if row.detail else None,
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)
