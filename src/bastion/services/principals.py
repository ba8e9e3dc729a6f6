"""Turning a credential (bearer token, API key, Basic password) into a principal.

All three end in the same :class:`Principal`: the user and the scopes this
credential carries, capped by the user's current roles, so a demoted admin
loses admin rights on the next request. A client's own token
(client_credentials) is a principal too, of kind ``client``: it has a
``client_id`` and no user, and a route that reads ``principal.user`` refuses
it with 403 (:class:`~bastion.errors.NoUser`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.engine import transaction
from bastion.db.models import utcnow
from bastion.errors import AccountDisabled, AuthenticationError, InvalidGrant, InvalidToken, NoUser
from bastion.security.access_tokens import (
    MAX_TOKEN_LENGTH,
    AccessClaims,
    AccessTokenCodec,
    UnknownKey,
)
from bastion.security.opaque_tokens import API_KEY_PREFIX, TokenDigester
from bastion.services.access_catalog import AccessCatalog, Catalog
from bastion.services.auth_state import AuthState, UserView
from bastion.services.clients import ClientRegistry
from bastion.services.token_grants import ClientInfo, TokenGrants

CredentialKind = Literal["bearer", "api_key", "basic", "client"]


@dataclass(frozen=True, slots=True)
class Principal:
    account: UserView | None  # None for a client acting for itself
    scopes: frozenset[str]
    credential: CredentialKind
    session_id: str | None = None
    api_key_id: str | None = None
    client_id: str | None = None  # the OAuth client the token was issued to

    @property
    def user(self) -> UserView:
        """The user this credential acts for; a client's own token has none (403)."""
        if self.account is None:
            raise NoUser()
        return self.account


@dataclass(frozen=True, slots=True)
class Introspection:
    claims: AccessClaims
    username: str | None
    scopes: frozenset[str]  # as effective now: capped by the user's roles and the API's scopes


def _for_audiences(catalog: Catalog, claims: AccessClaims, scopes: frozenset[str]) -> frozenset[str]:
    """``scopes`` capped by the scopes of each registered API the token is for."""
    for audience in claims.audiences & catalog.audiences:
        scopes &= catalog.resources[audience]
    return scopes


class PrincipalResolver:
    def __init__(
        self,
        *,
        codec: AccessTokenCodec,
        digester: TokenDigester,
        state: AuthState,
        catalog: AccessCatalog,
        grants: TokenGrants,
        clients: ClientRegistry,
        sessionmaker: async_sessionmaker[AsyncSession],
        reload_keys: Callable[[], Awaitable[bool]],
    ) -> None:
        self._clients = clients
        self._codec = codec
        self._digester = digester
        self._state = state
        self._catalog = catalog
        self._grants = grants
        self._sessionmaker = sessionmaker
        self._reload_keys = reload_keys

    async def _live(
        self, token: str, audiences: frozenset[str] | None = None
    ) -> tuple[AccessClaims, UserView | None, frozenset[str]]:
        """A valid token whose session and user (or client) still stand, and its effective scopes."""
        try:
            claims = self._codec.verify(token, audiences=audiences)
        except UnknownKey:
            if not await self._reload_keys():
                raise
            claims = self._codec.verify(token, audiences=audiences)
        catalog = await self._catalog.current()
        if claims.is_client_token:
            # No session to revoke: the token is short-lived, and stops with its client.
            client = await self._clients.get(claims.subject)
            if client is None:
                raise InvalidToken("the client is disabled or gone")
            return claims, None, _for_audiences(catalog, claims, claims.scopes & client.scopes)
        if claims.session_id is None:
            raise InvalidToken("the token has no session")
        session = await self._state.session(claims.session_id)
        if session is None or session.user_id != claims.subject or not session.is_active(utcnow()):
            raise InvalidToken("the session has ended")
        user = await self._state.user(claims.subject)
        if user is None or not user.is_active:
            raise InvalidToken("the account is disabled or gone")
        scopes = claims.scopes & catalog.permitted(user.roles)
        return claims, user, _for_audiences(catalog, claims, scopes)

    async def from_bearer(self, token: str) -> Principal:
        claims, user, scopes = await self._live(token)
        return Principal(
            account=user, scopes=scopes, credential="client" if user is None else "bearer",
            session_id=claims.session_id, client_id=claims.client_id,
        )

    async def introspect(self, token: str) -> Introspection | None:
        """RFC 7662: what a resource server may know of a live access token; None if not live."""
        if len(token) > MAX_TOKEN_LENGTH:
            return None
        catalog = await self._catalog.current()
        try:
            claims, user, scopes = await self._live(token, catalog.audiences)
        except InvalidToken:
            return None
        username = user.username if user is not None else None
        return Introspection(claims=claims, username=username, scopes=scopes)

    async def from_api_key(self, key: str) -> Principal:
        if not key.startswith(API_KEY_PREFIX) or len(key) > 128:
            raise AuthenticationError("invalid API key")
        api_key = await self._state.api_key(self._digester.digest(key))
        if api_key is None or not api_key.is_active(utcnow()):
            raise AuthenticationError("invalid API key")
        user = await self._state.user(api_key.user_id)
        if user is None or not user.is_active:
            raise AuthenticationError("invalid API key")
        catalog = await self._catalog.current()
        return Principal(
            account=user,
            scopes=api_key.scopes & catalog.scopes_for(user.roles),
            credential="api_key",
            api_key_id=api_key.id,
        )

    async def from_basic(self, username: str, password: str, client: ClientInfo) -> Principal:
        try:
            async with transaction(self._sessionmaker) as db:
                user = await self._grants.check_password(
                    db, identifier=username, password=password, client=client
                )
        except (InvalidGrant, AccountDisabled) as exc:
            raise AuthenticationError("incorrect username or password") from exc
        catalog = await self._catalog.current()
        return Principal(account=user, scopes=catalog.scopes_for(user.roles), credential="basic")
