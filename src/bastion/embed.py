"""Bastion inside your own FastAPI app: one object with the routes, the lifespan and ``requires``.

    from bastion import Bastion, Principal, Scope

    bastion = Bastion(scopes=[Scope("orders:read", "Read orders", roles=("user",))])
    app = FastAPI()
    bastion.install(app)

    @app.get("/orders")
    async def orders(who: Annotated[Principal, bastion.requires("orders:read")]) -> ...

``install`` adds Bastion's routers and error handlers and wraps the app's
lifespan (any lifespan the app already has still runs, inside Bastion's).
At startup the lifespan migrates the database (inside the running event
loop), makes the first signing key, declares the app's scopes and builds the
runtime; at shutdown it closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from bastion.api import deps, error_handlers
from bastion.api.docs import document_code_flow, document_credential_schemes
from bastion.api.routes import (
    access,
    account_recovery,
    admin,
    api_keys,
    auth,
    authorize,
    clients,
    consents,
    introspection,
    meta,
    mfa,
    todos,
    users,
)
from bastion.config import Settings
from bastion.db import migrate
from bastion.db.engine import create_engine, create_sessionmaker, transaction
from bastion.runtime import Runtime, application_scopes, build_runtime
from bastion.services import maintenance, signing_keys
from bastion.services.access_model import ScopeDeclaration

Scope = ScopeDeclaration  # the public name: ``Scope("orders:read", "Read orders", roles=...)``


def bastion_routers(settings: Settings) -> list[APIRouter]:
    """Bastion's routers; the resource API that every client calls comes first."""
    routers = [users.router]
    if settings.demo_todos:
        routers.append(todos.router)
    routers += [
        introspection.router,  # asked by resource servers, as often as their own routes
        auth.router,
        authorize.router,  # every sign-in: two requests here beside one at /auth/token
        api_keys.router, consents.router, admin.router, access.router,
        account_recovery.router, mfa.router, mfa.admin_router, clients.router,
        meta.router,
    ]
    if settings.metrics:
        routers.append(meta.metrics_router)
    return routers


async def prepare_database(settings: Settings) -> None:
    """Migrate to the newest schema and make the first signing key; safe in a running loop."""
    await migrate.upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as db:
            await signing_keys.ensure_active_key(db, algorithm=settings.jwt_algorithm)
    finally:
        await engine.dispose()


class Bastion:
    """Authentication and authorization for the FastAPI app it is installed in."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        scopes: Sequence[ScopeDeclaration] = (),
        migrate: bool = True,
        freeze_heap_after_startup: bool = False,
    ) -> None:
        """``settings`` default to the ``BASTION_*`` environment.

        ``scopes``: the app's own, created at startup when missing (granted to
        their ``roles`` once, at creation). ``migrate=False`` when the schema
        is migrated beforehand (``bastion db upgrade``), as with several workers.
        ``freeze_heap_after_startup`` is for a process that serves only this app.
        """
        self.settings = settings or Settings()
        self._scopes = list(scopes)
        self._migrate = migrate
        self._freeze_heap = freeze_heap_after_startup
        self._runtime: Runtime | None = None

    requires = staticmethod(deps.requires)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("Bastion is not started: its lifespan has not run")
        return self._runtime

    @property
    def scopes(self) -> list[ScopeDeclaration]:
        """Every scope declared at startup, the demo's included."""
        return application_scopes(self.settings, self._scopes)

    def install(self, app: FastAPI, *, prefix: str = "") -> None:
        """Add Bastion's routes (under ``prefix``) and error handlers; run its lifespan."""
        self.add_routes(app, prefix=prefix)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(target: Any) -> AsyncIterator[Any]:
            async with self.lifespan(target), inner(target) as state:
                yield state

        app.router.lifespan_context = lifespan

    def add_routes(self, app: FastAPI, *, prefix: str = "") -> None:
        """Bastion's routes, error handlers and documented scopes, without its lifespan
        (for an app whose runtime is made elsewhere, as in the tests)."""
        for router in bastion_routers(self.settings):
            app.include_router(router, prefix=prefix)
        error_handlers.install(app)
        self.document_scopes(app)

    def document_scopes(self, app: FastAPI) -> None:
        """List the declared scopes beside the built-in ones in Swagger's Authorize dialog."""
        declared = {scope.name: scope.description for scope in self.scopes}
        build = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                schema = build()
                schemes = schema.get("components", {}).get("securitySchemes", {})
                flows = schemes.get("OAuth2", {}).get("flows")
                if flows is not None:
                    document_code_flow(flows, password_grant=self.settings.password_grant)
                for flow in schemes.get("OAuth2", {}).get("flows", {}).values():
                    flow["scopes"] = {**flow.get("scopes", {}), **declared}
                document_credential_schemes(schema, basic_auth=self.settings.basic_auth)
            return app.openapi_schema or build()

        app.openapi = openapi  # type: ignore[method-assign]

    def lifespan(self, app: FastAPI) -> AbstractAsyncContextManager[None]:
        """Start Bastion for ``app`` (``app.state.runtime``) and stop it afterwards."""
        return self._running(app)

    @asynccontextmanager
    async def _running(self, app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        if self._migrate:
            await prepare_database(settings)
        runtime = await build_runtime(settings, scopes=self._scopes)
        self._runtime = runtime
        app.state.runtime = runtime
        upkeep = asyncio.create_task(
            maintenance.run_forever(
                runtime.sessionmaker,
                runtime.keys,
                key_refresh_interval=settings.key_refresh_interval,
                audit_retention_days=settings.audit_retention_days,
            )
        )
        if self._freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            self._runtime = None
            await runtime.close()
