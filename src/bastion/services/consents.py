"""The consent a user gave a third-party client: kept, listed and withdrawn.

Consent is kept per user and client as the set of scopes allowed (Bastion's
own and any API's alike): a request within it asks no more, a wider one asks
again and the union is kept. Withdrawing it also ends the sessions the user
opened for that client and forgets the codes the client has not redeemed, so
that its next request asks again and nothing it already holds keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import Consent, OAuthClient, utcnow
from bastion.db.pagination import paginate
from bastion.errors import NotFound
from bastion.scopes import format_scope, parse_scope
from bastion.services import audit, authorization_codes, sessions
from bastion.services.auth_state import AuthState


@dataclass(frozen=True, slots=True)
class GivenConsent:
    """One client a user has allowed, what to, and when."""

    client_id: str
    client_name: str
    scopes: frozenset[str]
    created_at: datetime
    updated_at: datetime  # when it last grew; its creation if it never did


async def consented(db: AsyncSession, *, user_id: str, client_id: str) -> frozenset[str]:
    row = await db.get(Consent, (user_id, client_id))
    return parse_scope(row.scopes) if row is not None else frozenset()


async def remember(
    db: AsyncSession, *, user_id: str, client_id: str, scopes: frozenset[str], ip: str | None
) -> None:
    row = await db.get(Consent, (user_id, client_id))
    if row is None:
        db.add(Consent(user_id=user_id, client_id=client_id, scopes=format_scope(scopes)))
    else:
        given = parse_scope(row.scopes)
        widened = given | scopes
        if widened != given:
            row.scopes = format_scope(widened)
            row.updated_at = utcnow()
    await db.flush()
    audit.record(
        db, "consent_granted", user_id=user_id, ip=ip,
        detail={"client_id": client_id, "scopes": sorted(scopes)},
    )


async def page_of_consents(
    db: AsyncSession, *, user_id: str, limit: int, offset: int
) -> tuple[list[GivenConsent], int]:
    """The clients ``user_id`` has allowed, the most recently allowed first."""
    query = (
        select(Consent)
        .where(Consent.user_id == user_id)
        .order_by(Consent.created_at.desc(), Consent.client_id)
    )
    rows, total = await paginate(db, query, limit=limit, offset=offset)
    named = select(OAuthClient.id, OAuthClient.name).where(
        OAuthClient.id.in_([row.client_id for row in rows])
    )
    names = {client_id: name for client_id, name in await db.execute(named)}
    return [
        GivenConsent(
            client_id=row.client_id, client_name=names.get(row.client_id, ""),
            scopes=parse_scope(row.scopes), created_at=row.created_at,
            updated_at=row.updated_at or row.created_at,
        )
        for row in rows
    ], total


async def withdraw(
    db: AsyncSession, state: AuthState, *, user_id: str, client_id: str, ip: str | None
) -> None:
    """Forget ``user_id``'s consent to ``client_id`` and end what the client holds of it."""
    row = await db.get(Consent, (user_id, client_id))
    if row is None:
        raise NotFound("no consent given to this client")
    await db.delete(row)
    ended = await sessions.revoke_client_sessions(
        db, state, user_id=user_id, client_id=client_id
    )
    await authorization_codes.discard_of_client(db, user_id=user_id, client_id=client_id)
    await db.flush()
    audit.record(
        db, "consent_revoked", user_id=user_id, ip=ip,
        detail={"client_id": client_id, "sessions": len(ended)},
    )
