"""The OAuth 2.0 grants: password (login) and refresh_token (rotation), plus revocation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bastion.db.models import User
from bastion.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidCredentialsGrant,
    InvalidGrant,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    MfaRequired,
    NotFound,
    RefreshTokenReused,
    Throttled,
)
from bastion.scopes import format_scope
from bastion.security.access_tokens import AccessTokenCodec
from bastion.security.opaque_tokens import REFRESH_TOKEN_PREFIX, TokenDigester
from bastion.security.passwords import PasswordHasher
from bastion.services import audit, mfa, sessions, users
from bastion.services.access_catalog import AccessCatalog, Catalog
from bastion.services.auth_state import AuthState, UserView
from bastion.services.sessions import SessionPolicy
from bastion.services.throttle import LoginThrottle


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


def _requested(catalog: Catalog, scope: str | None) -> frozenset[str] | None:
    if scope is None or not scope.strip():
        return None
    requested = frozenset(scope.split())
    unknown = catalog.unknown_scopes(requested)
    if unknown:
        raise InvalidScope("unknown scope: " + " ".join(unknown))
    return requested


def _check_resource(catalog: Catalog, resource: str | None) -> None:
    if resource is not None and resource not in catalog.resources:
        raise InvalidTarget("unknown resource: register it as a resource server first")


class TokenGrants:
    """Issues token sets; holds the collaborators every grant needs."""

    def __init__(
        self,
        *,
        codec: AccessTokenCodec,
        digester: TokenDigester,
        passwords: PasswordHasher,
        state: AuthState,
        catalog: AccessCatalog,
        policy: SessionPolicy,
        throttle: LoginThrottle,
        read_engine: AsyncEngine,
        observe: Callable[[str], None] = lambda event: None,
        require_verified_email: bool = False,
        mfa_token_ttl: int = 300,
    ) -> None:
        self.require_verified_email = require_verified_email
        self.mfa_token_ttl = mfa_token_ttl
        self.read_engine = read_engine
        self.throttle = throttle
        self.observe = observe  # told of every login outcome and reuse, for metrics
        self.codec = codec
        self.digester = digester
        self.passwords = passwords
        self.state = state
        self.catalog = catalog
        self.policy = policy

    async def check_password(
        self, db: AsyncSession, *, identifier: str, password: str, client: ClientInfo
    ) -> UserView:
        """The user these credentials prove, or :class:`InvalidCredentialsGrant`.

        An unknown user costs one dummy verification, like a known one.
        A correct password of a disabled account is :class:`AccountDisabled`, of an
        unverified one (when verification is required) :class:`EmailNotVerified`, of
        one with a second factor :class:`MfaRequired`: the password alone proves
        nothing more, and does not clear the failure counter until the code does.
        While throttled, even a correct password gets :class:`Throttled`. The
        failures are counted per account (by username or email alike), or per
        canonical identifier when it names none; either way the lookup comes
        first, so a throttled unknown name costs what a throttled account does.
        """
        # Read the account on the read pool and verify with no transaction open:
        # on SQLite a transaction holds the write lock, which must not wait on a hash.
        async with self.read_engine.connect() as lookup:
            found = await users.find_login(lookup, identifier)
        user_id = found.user.id if found is not None else None
        try:
            await self.throttle.check(username=identifier, ip=client.ip, account_id=user_id)
        except Throttled:
            self._login_refused(db, "login_throttled", user_id, identifier, client)
            raise
        result = await self.passwords.verify(
            password, found.hashed_password if found is not None else None
        )
        if found is None or not result.valid:
            await self.throttle.failed(username=identifier, ip=client.ip, account_id=user_id)
            self._login_refused(db, "login_failed", user_id, identifier, client)
            raise InvalidCredentialsGrant(keep_writes=True)
        if not found.second_factor:
            await self.throttle.succeeded(username=identifier, ip=client.ip, account_id=user_id)
        if not found.user.is_active:
            self.observe("login_disabled")
            raise AccountDisabled()
        if self.require_verified_email and not found.user.email_verified:
            self.observe("login_unverified")
            raise EmailNotVerified()
        if result.new_hash is not None:
            await users.upgrade_hash(
                db, user_id=found.user.id, old=found.hashed_password, new=result.new_hash
            )
        if found.second_factor:
            self.observe("login_mfa_required")
            raise MfaRequired(user_id=found.user.id)
        self.observe("login_succeeded")
        return found.user

    def _login_refused(
        self,
        db: AsyncSession,
        event: str,
        user_id: str | None,
        identifier: str,
        client: ClientInfo,
    ) -> None:
        self.observe(event)
        detail = {"username": users.canonical(identifier)[:64]}
        audit.record(db, event, user_id=user_id, ip=client.ip, detail=detail)

    async def password_grant(
        self,
        db: AsyncSession,
        *,
        identifier: str,
        password: str,
        scope: str | None,
        client: ClientInfo,
        resource: str | None = None,
    ) -> TokenSet:
        catalog = await self.catalog.current()
        requested = _requested(catalog, scope)
        _check_resource(catalog, resource)
        try:
            user = await self.check_password(
                db, identifier=identifier, password=password, client=client
            )
        except MfaRequired as pending:
            pending.mfa_token = await mfa.challenge(
                db, digester=self.digester, user_id=pending.user_id, login=identifier,
                scope=scope, resource=resource, ttl=self.mfa_token_ttl, ip=client.ip,
            )
            raise
        return await self._open_session(
            db, catalog, user, requested=requested, resource=resource, client=client
        )

    async def finish_login(
        self,
        db: AsyncSession,
        *,
        user: UserView,
        scope: str | None,
        resource: str | None,
        client: ClientInfo,
        method: str,
    ) -> TokenSet:
        """The token set of a login whose second factor (``method``) has just been checked."""
        catalog = await self.catalog.current()
        requested = _requested(catalog, scope)
        _check_resource(catalog, resource)
        return await self._open_session(
            db, catalog, user, requested=requested, resource=resource, client=client,
            detail={"mfa": method},
        )

    async def _open_session(
        self,
        db: AsyncSession,
        catalog: Catalog,
        user: UserView,
        *,
        requested: frozenset[str] | None,
        resource: str | None,
        client: ClientInfo,
        detail: dict[str, str] | None = None,
    ) -> TokenSet:
        granted = catalog.scopes_for(user.roles) & catalog.allowed_for(resource)
        if requested is not None:
            granted &= requested
        grant = await sessions.start_session(
            db,
            digester=self.digester,
            policy=self.policy,
            user_id=user.id,
            scopes=granted,
            ip=client.ip,
            user_agent=client.user_agent,
            audience=resource,
        )
        audit.record(
            db, "login_succeeded", user_id=user.id, ip=client.ip,
            detail={"session_id": grant.session_id, **(detail or {})},
        )
        return self._token_set(catalog, user, grant)

    async def refresh_grant(
        self,
        db: AsyncSession,
        *,
        refresh_token: str,
        scope: str | None,
        client: ClientInfo,
        resource: str | None = None,
        client_id: str | None = None,
    ) -> TokenSet:
        """RFC 6749 6; a session opened for an OAuth client refreshes for that client only
        (``client_id``: the client that named or authenticated itself, if any)."""
        catalog = await self.catalog.current()
        requested = _requested(catalog, scope)
        if not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
            raise InvalidGrant("not a refresh token")
        try:
            grant, session = await sessions.rotate(
                db,
                self.state,
                digester=self.digester,
                policy=self.policy,
                refresh_token=refresh_token,
                ip=client.ip,
            )
        except RefreshTokenReused:
            self.observe("refresh_reuse_detected")
            raise
        if session.client_id is not None and session.client_id != client_id:
            raise InvalidGrant("the refresh token was issued to another client")
        if resource is not None and resource != grant.audience:
            raise InvalidTarget("a session's tokens are for the resource it was opened for")
        if grant.audience is not None and grant.audience not in catalog.resources:
            raise InvalidGrant("the resource server of this session is no longer registered")
        if requested is not None:
            if not requested <= grant.scopes:
                raise InvalidScope("the requested scope exceeds the session's")
            grant = dataclasses.replace(grant, scopes=requested)
        # Read through this unit of work: a second connection would wait on
        # SQLite's write lock that this transaction already holds.
        row = await db.get(User, grant.user_id)
        if row is None or not row.is_active:
            raise InvalidGrant("the account is disabled or gone")
        user = UserView.of(row)
        audit.record(
            db, "token_refreshed", user_id=user.id, ip=client.ip,
            detail={"session_id": grant.session_id},
        )
        return self._token_set(catalog, user, grant)

    async def revoke(self, db: AsyncSession, *, token: str) -> str | None:
        """RFC 7009: end the session of a known refresh or access token; silent otherwise."""
        session_id: str | None = None
        if token.startswith(REFRESH_TOKEN_PREFIX):
            session = await sessions.session_of_refresh_token(
                db, digester=self.digester, refresh_token=token
            )
            session_id = session.id if session is not None else None
        else:
            try:
                session_id = self.codec.verify(token).session_id
            except InvalidToken:
                session_id = None
        if session_id is None:
            return None
        try:
            ended = await sessions.revoke_session(db, self.state, session_id=session_id)
        except NotFound:  # RFC 7009: an unknown token is not an error
            return None
        return ended.user_id

    def _token_set(
        self, catalog: Catalog, user: UserView, grant: sessions.SessionGrant
    ) -> TokenSet:
        # The effective scopes are capped by the user's current roles (and the API's scopes).
        scopes = grant.scopes & catalog.permitted(user.roles) & catalog.allowed_for(grant.audience)
        issued = self.codec.issue(
            user_id=user.id, username=user.username, session_id=grant.session_id, scopes=scopes,
            audience=grant.audience,
        )
        return TokenSet(
            access_token=issued.token,
            expires_in=issued.expires_in,
            refresh_token=grant.refresh_token,
            scope=format_scope(scopes),
        )
