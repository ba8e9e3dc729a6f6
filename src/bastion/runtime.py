"""The objects one running app shares between requests, built in its lifespan."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bastion.config import Settings
from bastion.db import probe
from bastion.db.engine import (
    create_engine,
    create_read_engine,
    create_sessionmaker,
    transaction,
)
from bastion.metrics import Metrics
from bastion.redis_client import create_client
from bastion.security.access_tokens import AccessTokenCodec
from bastion.security.id_tokens import IdTokenSigner
from bastion.security.opaque_tokens import TokenDigester
from bastion.security.passwords import PasswordHasher, usable_cpus
from bastion.services import access_model, instance_secrets, todos
from bastion.services.access_catalog import CATALOG, AccessCatalog
from bastion.services.access_model import ScopeDeclaration
from bastion.services.account_kit import AccountKit, build_account_kit
from bastion.services.auth_state import AuthState
from bastion.services.authorization_server import AuthorizationServer
from bastion.services.clients import CLIENT, ClientRegistry, ensure_docs_client
from bastion.services.principals import PrincipalResolver
from bastion.services.sessions import SessionPolicy
from bastion.services.signing_keys import KeyManager
from bastion.services.state_events import StateEvents
from bastion.services.throttle import LoginThrottle, create_storage
from bastion.services.todo_pages import TodoPages
from bastion.services.todos import TODOS
from bastion.services.token_grants import TokenGrants

READY_TIMEOUT = 2.0  # seconds /readyz waits for the database before calling it down


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    read_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    passwords: PasswordHasher
    keys: KeyManager
    codec: AccessTokenCodec
    digester: TokenDigester
    state: AuthState
    grants: TokenGrants
    principals: PrincipalResolver
    throttle: LoginThrottle
    metrics: Metrics
    todo_pages: TodoPages
    catalog: AccessCatalog
    clients: ClientRegistry
    oauth: AuthorizationServer
    redis: Redis | None = None
    events: StateEvents | None = None
    account_kit: AccountKit | None = None  # mail, link quotas, the TOTP secret box

    async def close(self) -> None:
        if self.account_kit is not None:
            await self.account_kit.mailer.close()
        self.passwords.close()
        if self.events is not None:
            await self.events.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()

    async def unready(self) -> str | None:
        """The name of the first dependency that does not answer or refuses writes, or None."""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                if not await probe.accepts_writes(self.engine):
                    return "database"
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return "database"
        if self.redis is not None:
            try:
                await self.redis.ping()
            except Exception:  # noqa: BLE001
                return "redis"
        return None


def application_scopes(
    settings: Settings, extra: Iterable[ScopeDeclaration] = ()
) -> list[ScopeDeclaration]:
    """The scopes declared at startup: the todo demo's (when on), then the app's own."""
    return [*(todos.SCOPES if settings.demo_todos else ()), *extra]


async def build_runtime(
    settings: Settings, *, scopes: Iterable[ScopeDeclaration] = ()
) -> Runtime:
    """Connect to the database and load keys; the schema must be migrated already.

    ``scopes`` are the application's own, created when missing, after the todo
    demo's when it is on (see :func:`bastion.services.access_model.declare_scopes`).
    """
    engine = create_engine(settings.database_url)
    read_engine = create_read_engine(settings.database_url, engine)
    sessionmaker = create_sessionmaker(engine)
    read_sessionmaker = create_sessionmaker(read_engine)
    try:
        keys = KeyManager(
            sessionmaker,
            algorithm=settings.jwt_algorithm,
            refresh_interval=settings.key_refresh_interval,
        )
        await keys.start()
        async with transaction(sessionmaker) as db:
            hash_key = await instance_secrets.token_hash_key(db, settings.secret_key)
    except BaseException:
        await engine.dispose()
        await read_engine.dispose()
        raise
    passwords = PasswordHasher(
        memory_cost=settings.argon2_memory_cost,
        time_cost=settings.argon2_time_cost,
        threads=settings.hashing_threads or usable_cpus(),
    )
    codec = AccessTokenCodec(
        key_ring=lambda: keys.ring,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl=settings.access_token_ttl,
    )
    digester = TokenDigester(hash_key)
    state = AuthState(read_sessionmaker, ttl=settings.state_cache_ttl)
    catalog = AccessCatalog(read_sessionmaker, ttl=settings.state_cache_ttl)
    state.register(CATALOG, catalog)
    declared = application_scopes(settings, scopes)
    if declared:
        async with transaction(sessionmaker) as db:
            await access_model.declare_scopes(db, state, declared)
    clients = ClientRegistry(read_sessionmaker, digester=digester, ttl=settings.state_cache_ttl)
    state.register(CLIENT, clients)
    async with transaction(sessionmaker) as db:
        await ensure_docs_client(db, state, issuer=settings.issuer)
    todo_pages = TodoPages(ttl=settings.state_cache_ttl)
    state.register(TODOS, todo_pages)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    throttle = LoginThrottle(
        create_storage(redis_url, timeout=settings.redis_timeout, purpose="login counters"),
        account_failures=settings.login_max_failures,
        account_window=settings.login_failure_window,
        ip_failures=settings.ip_max_failures,
        ip_window=settings.ip_failure_window,
    )
    metrics = Metrics()
    grants = TokenGrants(
        read_engine=read_engine,
        throttle=throttle,
        observe=metrics.observe,
        codec=codec,
        digester=digester,
        passwords=passwords,
        state=state,
        catalog=catalog,
        policy=SessionPolicy(
            refresh_token_ttl=settings.refresh_token_ttl,
            session_max_lifetime=settings.session_max_lifetime,
        ),
        require_verified_email=settings.require_verified_email,
        mfa_token_ttl=settings.mfa_token_ttl,
    )
    principals = PrincipalResolver(
        codec=codec,
        digester=digester,
        state=state,
        catalog=catalog,
        grants=grants,
        clients=clients,
        sessionmaker=sessionmaker,
        reload_keys=keys.reload_for_unknown_kid,
    )
    runtime = Runtime(
        settings=settings,
        engine=engine,
        read_engine=read_engine,
        sessionmaker=sessionmaker,
        passwords=passwords,
        keys=keys,
        codec=codec,
        digester=digester,
        state=state,
        grants=grants,
        principals=principals,
        throttle=throttle,
        metrics=metrics,
        todo_pages=todo_pages,
        catalog=catalog,
        clients=clients,
        oauth=AuthorizationServer(
            grants=grants,
            clients=clients,
            id_tokens=IdTokenSigner(
                key_ring=lambda: keys.ring, issuer=settings.issuer, ttl=settings.access_token_ttl
            ),
            code_ttl=settings.authorization_code_ttl,
            browser_session_ttl=settings.browser_session_ttl,
        ),
        account_kit=build_account_kit(
            settings,
            master_key=hash_key,
            storage=create_storage(
                redis_url, timeout=settings.redis_timeout, purpose="sign-up and mail quotas"
            ),
        ),
    )
    if redis_url:
        client = create_client(redis_url, timeout=settings.redis_timeout)
        events = StateEvents(client, state, startup_wait=settings.redis_startup_wait)
        await events.start()
        runtime = dataclasses.replace(runtime, redis=client, events=events)
    return runtime
