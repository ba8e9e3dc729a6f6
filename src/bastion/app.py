"""The application factory: ``create_app(settings)`` builds everything, nothing at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from bastion import __version__
from bastion.api import docs, error_handlers
from bastion.api.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from bastion.api.routes import admin, api_keys, auth, meta, todos, users
from bastion.config import Settings
from bastion.log import AccessLogMiddleware
from bastion.metrics import MetricsMiddleware
from bastion.runtime import Runtime, build_runtime
from bastion.services import maintenance

DESCRIPTION = """Authentication and authorization for FastAPI: OAuth2 password flow,
short-lived JWT access tokens, rotating refresh tokens, roles, scopes, API keys
and HTTP Basic. Use **Authorize** with your username and password."""


def create_server_app() -> FastAPI:
    """The app as ``bastion serve`` runs it, one per worker process it owns.

    Once started, the process's heap (modules, compiled SQL, the runtime) is
    frozen out of garbage collection: a full collection would otherwise walk
    it again and again, a pause of tens of milliseconds under load.
    """
    return create_app(Settings(), freeze_heap_after_startup=True)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    freeze_heap_after_startup: bool = False,
) -> FastAPI:
    """Build the app. The database must already be migrated (``bastion db upgrade``).

    ``runtime`` lets a caller (the tests) supply an already-built runtime;
    otherwise the lifespan builds one from ``settings`` and closes it after.
    ``freeze_heap_after_startup`` is for a process that serves only this app.
    """
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        built = await build_runtime(settings)
        app.state.runtime = built
        upkeep = asyncio.create_task(
            maintenance.run_forever(
                built.sessionmaker,
                built.keys,
                key_refresh_interval=settings.key_refresh_interval,
                audit_retention_days=settings.audit_retention_days,
            )
        )
        if freeze_heap_after_startup:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await built.close()

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by docs.install from local assets: no CDN
        redoc_url=None,  # ReDoc would load its script from a CDN
        swagger_ui_parameters={"persistAuthorization": False},
    )
    docs.install(app)
    if runtime is not None:
        app.state.runtime = runtime
    error_handlers.install(app)
    # Routes are matched in order: the resource API that every client calls comes first.
    for router in (users.router, todos.router, auth.router, api_keys.router, admin.router,
                   meta.router):
        app.include_router(router)
    # Last added runs first: the body limit wraps everything.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_size=settings.max_body_size)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(AccessLogMiddleware)
    return app
