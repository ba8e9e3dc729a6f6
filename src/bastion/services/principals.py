"""Turning a credential (bearer token, API key, Basic password) into a principal.

All three end in the same :class:`Principal`: the user and the scopes this
credential carries, capped by the user's current roles, so a demoted admin
loses admin rights on the next request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.engine import transaction
from bastion.db.models import utcnow
from bastion.errors import AccountDisabled, AuthenticationError, InvalidGrant, InvalidToken
from bastion.security.access_tokens import AccessTokenCodec, UnknownKey
from bastion.security.opaque_tokens import API_KEY_PREFIX, TokenDigester
from bastion.services.auth_state import AuthState, UserView
from bastion.services.token_grants import ClientInfo, TokenGrants

CredentialKind = Literal["bearer", "api_key", "basic"]


@dataclass(frozen=True, slots=True)
class Principal:
    user: UserView
    scopes: frozenset[str]
    credential: CredentialKind
    session_id: str | None = None
    api_key_id: str | None = None


class PrincipalResolver:
    def __init__(
        self,
        *,
        codec: AccessTokenCodec,
        digester: TokenDigester,
        state: AuthState,
        grants: TokenGrants,
        sessionmaker: async_sessionmaker[AsyncSession],
        reload_keys: Callable[[], Awaitable[bool]],
    ) -> None:
        self._codec = codec
        self._digester = digester
        self._state = state
        self._grants = grants
        self._sessionmaker = sessionmaker
        self._reload_keys = reload_keys

    async def from_bearer(self, token: str) -> Principal:
        try:
            claims = self._codec.verify(token)
        except UnknownKey:
            if not await self._reload_keys():
                raise
            claims = self._codec.verify(token)
        session = await self._state.session(claims.session_id)
        if session is None or session.user_id != claims.subject or not session.is_active(utcnow()):
            raise InvalidToken("the session has ended")
        user = await self._state.user(claims.subject)
        if user is None or not user.is_active:
            raise InvalidToken("the account is disabled or gone")
        return Principal(
            user=user,
            scopes=claims.scopes & user.role_scopes,
            credential="bearer",
            session_id=session.id,
        )

    async def from_api_key(self, key: str) -> Principal:
        if not key.startswith(API_KEY_PREFIX) or len(key) > 128:
            raise AuthenticationError("invalid API key")
        api_key = await self._state.api_key(self._digester.digest(key))
        if api_key is None or not api_key.is_active(utcnow()):
            raise AuthenticationError("invalid API key")
        user = await self._state.user(api_key.user_id)
        if user is None or not user.is_active:
            raise AuthenticationError("invalid API key")
        return Principal(
            user=user,
            scopes=api_key.scopes & user.role_scopes,
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
        return Principal(user=user, scopes=user.role_scopes, credential="basic")
