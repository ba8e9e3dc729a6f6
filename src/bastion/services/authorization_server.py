"""The token endpoint's OAuth 2.1 grants: authorization_code (with PKCE) and client_credentials.

A redeemed code opens a login session bound to its client (the ``sid`` of
its tokens, revoked if the code is replayed), to the browser session that
signed in (whose logout ends it) and to the code's resource; with ``openid``
it also yields an id_token. A client's own token has no session and no refresh token: it
lives ``access_token_ttl`` and dies with its client (disabled or deleted).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bastion.errors import InvalidGrant, InvalidScope, InvalidTarget, UnauthorizedClient
from bastion.scopes import OPENID, format_scope, parse_scope
from bastion.security.id_tokens import IdTokenClaims, IdTokenSigner
from bastion.services import audit, authorization_codes, sessions
from bastion.services.clients import (
    AUTHORIZATION_CODE,
    CLIENT_CREDENTIALS,
    REFRESH_TOKEN,
    ClientRegistry,
    ClientView,
)
from bastion.services.token_grants import ClientInfo, TokenGrants


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


class AuthorizationServer:
    """The collaborators of the code and client grants, and of the hosted login."""

    def __init__(
        self,
        *,
        grants: TokenGrants,
        clients: ClientRegistry,
        id_tokens: IdTokenSigner,
        code_ttl: int,
        browser_session_ttl: int,
    ) -> None:
        self.grants = grants
        self.clients = clients
        self.id_tokens = id_tokens
        self.code_ttl = code_ttl
        self.browser_session_ttl = browser_session_ttl

    async def client_credentials(
        self, *, client: ClientView, scope: str | None, resource: str | None
    ) -> OAuthTokens:
        """RFC 6749 4.4: a token for the client itself, within the client's scopes."""
        if not client.confidential or CLIENT_CREDENTIALS not in client.grant_types:
            raise UnauthorizedClient("this client may not use client_credentials")
        catalog = await self.grants.catalog.current()
        if resource is not None and resource not in catalog.resources:
            raise InvalidTarget("unknown resource: register it as a resource server first")
        allowed = client.scopes & catalog.allowed_for(resource) - {OPENID}
        requested = parse_scope(scope)
        unknown = catalog.unknown_scopes(requested)
        if unknown:
            raise InvalidScope("unknown scope: " + " ".join(unknown))
        if requested and not requested <= client.scopes:
            raise InvalidScope("the requested scope exceeds the client's")
        granted = requested & allowed if requested else allowed
        issued = self.grants.codec.issue(
            user_id=client.id, username="", session_id=None, scopes=granted,
            audience=resource, client_id=client.id,
        )
        return OAuthTokens(
            access_token=issued.token, expires_in=issued.expires_in, scope=format_scope(granted)
        )

    async def authorization_code(
        self, db: AsyncSession, *, client: ClientView, code: str, redirect_uri: str | None,
        code_verifier: str | None, resource: str | None, info: ClientInfo,
    ) -> OAuthTokens:
        """RFC 6749 4.1.3 with RFC 7636: the code, its redirect URI and the PKCE verifier.

        The access token (and the session, so every refresh) is for the resource the
        code is bound to (RFC 8707), with that API's scopes only; ``resource`` here may
        repeat it or be left out. The id_token is for the client whatever the resource.
        """
        if AUTHORIZATION_CODE not in client.grant_types:
            raise UnauthorizedClient("this client may not use authorization_code")
        row, grant = await authorization_codes.redeem(
            db, self.grants.state, digester=self.grants.digester, code=code,
            client_id=client.id, redirect_uri=redirect_uri, code_verifier=code_verifier,
            resource=resource, ip=info.ip,
        )
        user = await self.grants.state.user(grant.user_id)  # the view every request reads
        if user is None or not user.is_active:
            raise InvalidGrant("the account is disabled or gone", keep_writes=True)
        catalog = await self.grants.catalog.current()
        if grant.resource is not None and grant.resource not in catalog.resources:
            raise InvalidGrant("the resource server of this code is no longer registered",
                               keep_writes=True)
        allowed = grant.scopes & client.scopes & catalog.permitted(user.roles)
        scopes = allowed & catalog.allowed_for(grant.resource)
        opened = await sessions.start_session(
            db, digester=self.grants.digester, policy=self.grants.policy, user_id=user.id,
            scopes=scopes, ip=info.ip, user_agent=info.user_agent, audience=grant.resource,
            client_id=client.id, browser_session_id=grant.browser_session_id,
        )
        row.session_id = opened.session_id
        audit.record(
            db, "login_succeeded", user_id=user.id, ip=info.ip,
            detail={"session_id": opened.session_id, "client_id": client.id},
        )
        issued = self.grants.codec.issue(
            user_id=user.id, username=user.username, session_id=opened.session_id,
            scopes=scopes, audience=grant.resource, client_id=client.id,
        )
        id_token = None
        if OPENID in allowed:
            id_token = self.id_tokens.sign(
                IdTokenClaims(
                    client_id=client.id, user_id=user.id,
                    auth_time=int(grant.auth_time.timestamp()),
                    session_id=grant.browser_session_id or opened.session_id,
                    nonce=grant.nonce, username=user.username,
                ),
                access_token=issued.token,
            )
        refresh = opened.refresh_token if REFRESH_TOKEN in client.grant_types else None
        return OAuthTokens(
            access_token=issued.token, expires_in=issued.expires_in, scope=format_scope(scopes),
            refresh_token=refresh, id_token=id_token,
        )
