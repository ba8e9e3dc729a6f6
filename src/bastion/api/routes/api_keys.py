"""Personal API keys of the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from bastion.api.deps import Client, DbSession, Pagination, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyOut, Page
from bastion.db.models import ApiKey
from bastion.errors import PolicyViolation
from bastion.scopes import ME, parse_scope
from bastion.services import api_keys
from bastion.services.principals import Principal

router = APIRouter(prefix="/users/me/api-keys", tags=["api keys"])
Me = Annotated[Principal, requires(ME)]


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=sorted(parse_scope(key.scopes)),
        created_at=key.created_at,
        expires_at=key.expires_at,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=errors(400, 401, 403, 413, 422, 429),
)
async def create_api_key(
    body: ApiKeyIn, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> ApiKeyCreated:
    """Create a key; its secret ``key`` is shown in this response only."""
    requested = frozenset(body.scopes)
    unknown = (await runtime.catalog.current()).unknown_scopes(requested)
    if unknown:
        raise PolicyViolation("unknown scope: " + " ".join(unknown))
    key, secret = await api_keys.create_key(
        db,
        digester=runtime.digester,
        user_id=principal.user.id,
        name=body.name,
        scopes=requested,
        allowed_scopes=principal.scopes,
        expires_in_days=body.expires_in_days,
        ip=client.ip,
    )
    return ApiKeyCreated(**_out(key).model_dump(), key=secret)


@router.get("", response_model=Page[ApiKeyOut], responses=errors(401, 403, 422, 429))
async def list_api_keys(principal: Me, db: DbSession, page: Pagination) -> Page[ApiKeyOut]:
    rows, total = await api_keys.list_keys(
        db, user_id=principal.user.id, limit=page.limit, offset=page.offset
    )
    return Page(
        items=[_out(key) for key in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.delete("/{key_id}", status_code=204, responses=errors(401, 403, 404, 429))
async def delete_api_key(
    key_id: ObjectId, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Revoke a key; it stops working at once."""
    await api_keys.revoke_key(
        db, runtime.state, user_id=principal.user.id, key_id=key_id, ip=client.ip
    )
