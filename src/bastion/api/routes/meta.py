"""Public endpoints: service info, health, readiness, JWKS and discovery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from bastion import __version__
from bastion.api.deps import RuntimeDep
from bastion.api.discovery import authorization_server_metadata
from bastion.api.schemas import Health, ServiceInfo
from bastion.security.access_tokens import public_jwk

router = APIRouter(tags=["meta"])


@router.get("/", response_model=ServiceInfo)
async def service_info() -> ServiceInfo:
    return ServiceInfo(name="bastion", version=__version__, docs="/docs")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"description": "The database (or Redis, when configured) does not answer"}},
)
async def readyz(runtime: RuntimeDep) -> Any:
    reason = await runtime.unready()
    if reason is not None:
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return Health(status="ok")


# Only with BASTION_METRICS on: what it shows (routes, login outcomes) is for the scraper.
metrics_router = APIRouter(tags=["meta"])


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/.well-known/jwks.json")
async def jwks(runtime: RuntimeDep) -> dict[str, list[dict[str, Any]]]:
    await runtime.keys.reload_if_due()
    return {"keys": [public_jwk(key) for key in runtime.keys.ring.keys.values()]}


@router.get("/.well-known/openid-configuration")
async def openid_configuration(runtime: RuntimeDep) -> dict[str, Any]:
    issuer = runtime.settings.issuer.rstrip("/")
    return {
        "issuer": runtime.settings.issuer,
        "token_endpoint": f"{issuer}/auth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/auth/revoke",
        "introspection_endpoint": f"{issuer}/auth/introspect",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "scopes_supported": sorted((await runtime.catalog.current()).scopes),
        "grant_types_supported": [
            *(["password"] if runtime.settings.password_grant else []),
            "authorization_code", "refresh_token", "client_credentials", "urn:bastion:mfa",
        ],
        **authorization_server_metadata(issuer, runtime.keys.ring.active.algorithm),
    }
