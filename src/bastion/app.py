"""The application factory: ``create_app(settings)`` builds everything, nothing at import."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from bastion import __version__
from bastion.api import docs
from bastion.api.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from bastion.api.started import StartedCheckMiddleware
from bastion.config import Settings
from bastion.embed import Bastion
from bastion.log import AccessLogMiddleware, configure_logging
from bastion.metrics import MetricsMiddleware
from bastion.runtime import Runtime

DESCRIPTION = """Authentication and authorization for FastAPI: OAuth2 password flow,
short-lived JWT access tokens, rotating refresh tokens, roles, scopes, API keys
and HTTP Basic. Use **Authorize** with your username and password."""


def create_server_app() -> FastAPI:
    """The app as ``bastion serve`` runs it, one per worker process it owns.

    Each worker configures its own logging (``--workers N`` starts processes that
    inherit none of the parent's). Once started, the process's heap (modules,
    compiled SQL, the runtime) is frozen out of garbage collection: a full
    collection would otherwise walk it again and again, a pause of tens of
    milliseconds under load.
    """
    settings = Settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    return create_app(settings, freeze_heap_after_startup=True)


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    freeze_heap_after_startup: bool = False,
) -> FastAPI:
    """Build Bastion as a service. The database must already be migrated (``bastion db upgrade``).

    ``runtime`` lets a caller (the tests) supply an already-built runtime;
    otherwise the lifespan builds one from ``settings`` and closes it after.
    ``freeze_heap_after_startup`` is for a process that serves only this app.
    To add Bastion to an app of your own, use :class:`bastion.Bastion`.
    """
    settings = settings or (runtime.settings if runtime else Settings())
    bastion = Bastion(
        settings, migrate=False, freeze_heap_after_startup=freeze_heap_after_startup
    )
    app = FastAPI(
        title="Bastion",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by docs.install from local assets: no CDN
        redoc_url=None,  # ReDoc would load its script from a CDN
        swagger_ui_parameters={"persistAuthorization": False},
        swagger_ui_init_oauth=docs.swagger_oauth_settings(),
    )
    docs.install(app)
    if runtime is not None:
        app.state.runtime = runtime
        bastion.add_routes(app)
    else:
        bastion.install(app)
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
    if settings.metrics:  # counted only where /metrics serves them
        app.add_middleware(MetricsMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(StartedCheckMiddleware)  # outermost: the others need the runtime
    return app
