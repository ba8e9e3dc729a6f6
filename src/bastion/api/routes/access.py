"""Administration of the authorization model: scopes, roles and resource servers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from bastion.api.deps import Client, DbSession, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.schemas import (
    ResourceServerIn,
    ResourceServerOut,
    RoleIn,
    RoleOut,
    RolePatch,
    ScopeIn,
    ScopeOut,
)
from bastion.db.models import ResourceServer, Role, Scope
from bastion.scopes import USERS_WRITE
from bastion.services import access_model
from bastion.services.principals import Principal

router = APIRouter(prefix="/admin", tags=["admin"])
Admin = Annotated[Principal, requires(USERS_WRITE)]
RoleParam = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
READ_ERRORS = errors(401, 403, 429)
WRITE_ERRORS = errors(400, 401, 403, 409, 413, 422, 429)


def _scope_out(scope: Scope) -> ScopeOut:
    return ScopeOut(name=scope.name, description=scope.description, builtin=scope.builtin)


def _role_out(role: Role) -> RoleOut:
    return RoleOut(
        name=role.name, description=role.description, builtin=role.builtin, scopes=role.scopes
    )


def _server_out(server: ResourceServer) -> ResourceServerOut:
    return ResourceServerOut(
        id=server.id, identifier=server.identifier, name=server.name, scopes=server.scopes,
        created_at=server.created_at,
    )


@router.get("/scopes", response_model=list[ScopeOut], responses=READ_ERRORS)
async def list_scopes(principal: Admin, db: DbSession) -> list[ScopeOut]:
    return [_scope_out(scope) for scope in await access_model.list_scopes(db)]


@router.post(
    "/scopes", status_code=status.HTTP_201_CREATED, response_model=ScopeOut,
    responses=WRITE_ERRORS,
)
async def create_scope(
    body: ScopeIn, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> ScopeOut:
    scope = await access_model.create_scope(
        db, runtime.state, name=body.name, description=body.description, ip=client.ip,
        actor_id=principal.user.id,
    )
    return _scope_out(scope)


@router.get("/roles", response_model=list[RoleOut], responses=READ_ERRORS)
async def list_roles(principal: Admin, db: DbSession) -> list[RoleOut]:
    return [_role_out(role) for role in await access_model.list_roles(db)]


@router.post(
    "/roles", status_code=status.HTTP_201_CREATED, response_model=RoleOut,
    responses=WRITE_ERRORS,
)
async def create_role(
    body: RoleIn, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> RoleOut:
    role = await access_model.create_role(
        db, runtime.state, name=body.name, description=body.description, scopes=body.scopes,
        ip=client.ip, actor_id=principal.user.id,
    )
    return _role_out(role)


@router.get("/roles/{name}", response_model=RoleOut, responses=errors(401, 403, 404, 422, 429))
async def get_role(name: RoleParam, principal: Admin, db: DbSession) -> RoleOut:
    return _role_out(await access_model.get_role(db, name))


@router.patch(
    "/roles/{name}", response_model=RoleOut,
    responses=errors(400, 401, 403, 404, 409, 413, 422, 429),
)
async def update_role(
    name: RoleParam, body: RolePatch, principal: Admin, db: DbSession, runtime: RuntimeDep,
    client: Client,
) -> RoleOut:
    """Change a role's description or its scopes; effective at the next request everywhere."""
    role = await access_model.update_role(
        db, runtime.state, role=await access_model.get_role(db, name),
        description=body.description, scopes=body.scopes, ip=client.ip,
        actor_id=principal.user.id,
    )
    return _role_out(role)


@router.delete("/roles/{name}", status_code=204, responses=errors(401, 403, 404, 409, 422, 429))
async def delete_role(
    name: RoleParam, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Delete a role nobody holds; built-in roles stay."""
    await access_model.delete_role(
        db, runtime.state, role=await access_model.get_role(db, name), ip=client.ip,
        actor_id=principal.user.id,
    )


@router.get("/resource-servers", response_model=list[ResourceServerOut], responses=READ_ERRORS)
async def list_resource_servers(principal: Admin, db: DbSession) -> list[ResourceServerOut]:
    return [_server_out(server) for server in await access_model.list_resource_servers(db)]


@router.post(
    "/resource-servers", status_code=status.HTTP_201_CREATED, response_model=ResourceServerOut,
    responses=WRITE_ERRORS,
)
async def create_resource_server(
    body: ResourceServerIn, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> ResourceServerOut:
    """Register an API: tokens asked for with ``resource=<identifier>`` get it as ``aud``."""
    server = await access_model.create_resource_server(
        db, runtime.state, identifier=body.identifier, name=body.name, scopes=body.scopes,
        ip=client.ip, actor_id=principal.user.id,
    )
    return _server_out(server)


@router.delete(
    "/resource-servers/{server_id}", status_code=204, responses=errors(401, 403, 404, 429)
)
async def delete_resource_server(
    server_id: ObjectId, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    await access_model.delete_resource_server(
        db, runtime.state, server=await access_model.get_resource_server(db, server_id),
        ip=client.ip, actor_id=principal.user.id,
    )
