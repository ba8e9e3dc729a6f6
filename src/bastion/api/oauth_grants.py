"""The token endpoint's client grants (authorization_code, client_credentials), as HTTP."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.api.client_auth import basic_client, token_client
from bastion.api.schemas import TokenForm, TokenOut
from bastion.errors import InvalidRequest
from bastion.runtime import Runtime
from bastion.services.clients import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, ClientRegistry
from bastion.services.token_grants import ClientInfo

CLIENT_GRANTS = frozenset({AUTHORIZATION_CODE, CLIENT_CREDENTIALS})


async def client_grant(
    request: Request, db: AsyncSession, runtime: Runtime, info: ClientInfo, form: TokenForm,
    resource: str | None,
) -> TokenOut:
    """``grant_type`` authorization_code or client_credentials, for an authenticated client."""
    client = await token_client(request, form, runtime.clients)
    if form.grant_type == CLIENT_CREDENTIALS:
        tokens = await runtime.oauth.client_credentials(
            client=client, scope=form.scope, resource=resource
        )
    else:
        if not form.code:
            raise InvalidRequest("code is required")
        tokens = await runtime.oauth.authorization_code(
            db, client=client, code=form.code, redirect_uri=form.redirect_uri,
            code_verifier=form.code_verifier, resource=resource, info=info,
        )
    return TokenOut(
        access_token=tokens.access_token, expires_in=tokens.expires_in, scope=tokens.scope,
        refresh_token=tokens.refresh_token, id_token=tokens.id_token,
    )


async def refresh_client(request: Request, form: TokenForm, clients: ClientRegistry) -> str | None:
    """The client of a refresh request, when it names or authenticates one (else a login's)."""
    if basic_client(request) is None and form.client_id is None:
        return None
    return (await token_client(request, form, clients)).id
