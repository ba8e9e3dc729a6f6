"""Administration of OAuth clients: register, list, change, rotate a secret, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from bastion.api.client_schemas import (
    ClientCreated,
    ClientIn,
    ClientOut,
    ClientPatch,
    ClientSecretOut,
)
from bastion.api.deps import Client, DbSession, Pagination, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.schemas import Page
from bastion.db.models import OAuthClient
from bastion.scopes import USERS_WRITE
from bastion.services import clients
from bastion.services.clients import ClientSpec, ClientView
from bastion.services.principals import Principal

router = APIRouter(prefix="/admin/clients", tags=["admin"])
Admin = Annotated[Principal, requires(USERS_WRITE)]
WRITE_ERRORS = errors(400, 401, 403, 404, 409, 413, 422, 429)


def client_out(row: OAuthClient) -> ClientOut:
    view = ClientView.of(row)
    return ClientOut(
        client_id=view.id, name=view.name, type=view.type,
        redirect_uris=list(view.redirect_uris),
        post_logout_redirect_uris=list(view.post_logout_redirect_uris),
        grant_types=sorted(view.grant_types), scopes=sorted(view.scopes),
        first_party=view.first_party, is_active=view.is_active, created_at=row.created_at,
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ClientCreated, responses=WRITE_ERRORS
)
async def create_client(
    body: ClientIn, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> ClientCreated:
    """Register a client; a confidential client's secret is in this answer only."""
    row, secret = await clients.create_client(
        db, runtime.state, digester=runtime.digester,
        spec=ClientSpec(
            name=body.name, type=body.type, redirect_uris=body.redirect_uris,
            grant_types=body.grant_types, scopes=body.scopes, first_party=body.first_party,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
        ),
        ip=client.ip, actor_id=principal.user.id,
    )
    return ClientCreated(**client_out(row).model_dump(), client_secret=secret)


@router.get("", response_model=Page[ClientOut], responses=errors(401, 403, 422, 429))
async def list_clients(principal: Admin, db: DbSession, page: Pagination) -> Page[ClientOut]:
    rows, total = await clients.page_of_clients(db, limit=page.limit, offset=page.offset)
    return Page(
        items=[client_out(row) for row in rows], total=total, limit=page.limit,
        offset=page.offset,
    )


@router.get("/{client_id}", response_model=ClientOut, responses=errors(401, 403, 404, 429))
async def get_client(client_id: ObjectId, principal: Admin, db: DbSession) -> ClientOut:
    return client_out(await clients.get_client(db, client_id))


@router.patch("/{client_id}", response_model=ClientOut, responses=WRITE_ERRORS)
async def update_client(
    client_id: ObjectId, body: ClientPatch, principal: Admin, db: DbSession,
    runtime: RuntimeDep, client: Client,
) -> ClientOut:
    """Change a client; disabling it stops its own tokens at the next request."""
    row = await clients.update_client(
        db, runtime.state, client=await clients.get_client(db, client_id),
        **body.model_dump(exclude_unset=True), ip=client.ip, actor_id=principal.user.id,
    )
    return client_out(row)


@router.post("/{client_id}/secret", response_model=ClientSecretOut, responses=WRITE_ERRORS)
async def rotate_secret(
    client_id: ObjectId, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> ClientSecretOut:
    """A new secret, shown once; the old one keeps working for ``CLIENT_SECRET_GRACE`` seconds."""
    row = await clients.get_client(db, client_id)
    secret = await clients.rotate_secret(
        db, runtime.state, digester=runtime.digester, client=row,
        grace_seconds=runtime.settings.client_secret_grace, ip=client.ip,
        actor_id=principal.user.id,
    )
    return ClientSecretOut(
        client_id=row.id, client_secret=secret,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


@router.delete("/{client_id}", status_code=204, responses=errors(401, 403, 404, 409, 429))
async def delete_client(
    client_id: ObjectId, principal: Admin, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Delete a client: its codes and consents go, its own tokens stop at the next request."""
    await clients.delete_client(
        db, runtime.state, client=await clients.get_client(db, client_id), ip=client.ip,
        actor_id=principal.user.id,
    )
