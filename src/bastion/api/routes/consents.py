"""The third-party clients the caller has allowed to act for them: listed and withdrawn."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from bastion.api.deps import Client, DbSession, Pagination, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.schemas import ConsentOut, Page
from bastion.scopes import ME
from bastion.services import consents
from bastion.services.principals import Principal

router = APIRouter(prefix="/users/me/consents", tags=["users"])
Me = Annotated[Principal, requires(ME)]


@router.get("", response_model=Page[ConsentOut], responses=errors(401, 403, 422, 429))
async def list_consents(principal: Me, db: DbSession, page: Pagination) -> Page[ConsentOut]:
    """The clients you have allowed at the consent page, with the scopes and when."""
    given, total = await consents.page_of_consents(
        db, user_id=principal.user.id, limit=page.limit, offset=page.offset
    )
    items = [
        ConsentOut(
            client_id=consent.client_id, client_name=consent.client_name,
            scopes=sorted(consent.scopes), created_at=consent.created_at,
            updated_at=consent.updated_at,
        )
        for consent in given
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.delete("/{client_id}", status_code=204, responses=errors(401, 403, 404, 429))
async def withdraw_consent(
    client_id: ObjectId, principal: Me, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """Withdraw a consent: the client's sessions of yours end (its refresh tokens stop
    working) and its next sign-in asks you again."""
    await consents.withdraw(
        db, runtime.state, user_id=principal.user.id, client_id=client_id, ip=client.ip
    )
