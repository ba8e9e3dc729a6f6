"""Swagger UI at ``/docs`` from assets the app serves itself: no CDN, so it works offline."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from bastion.api.deps import api_key_scheme, basic_scheme
from bastion.services.clients import DOCS_CLIENT_ID

STATIC_URL = "/docs-static"
# fastapi-offline vendors the swagger-ui-dist@5 build that FastAPI would load from a CDN.
STATIC_DIR = files("fastapi_offline") / "static"


def install(app: FastAPI, docs_url: str = "/docs") -> None:
    """FastAPI's own /docs and OAuth2 redirect pages, on local assets (build with docs_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="docs-static")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            oauth2_redirect_url=root + redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def document_code_flow(flows: dict[str, Any], *, password_grant: bool) -> None:
    """Offer the authorization code flow with PKCE in Authorize (the built-in docs client).

    The password flow stays listed while the password grant is on.
    """
    password = flows.get("password", {})
    flows["authorizationCode"] = {
        "authorizationUrl": "/authorize",
        "tokenUrl": password.get("tokenUrl", "/auth/token"),
        "scopes": dict(password.get("scopes", {})),
    }
    if not password_grant:
        flows.pop("password", None)


def swagger_oauth_settings() -> dict[str, Any]:
    """Swagger UI's OAuth settings: the built-in public client, PKCE for the code flow."""
    return {"clientId": DOCS_CLIENT_ID, "usePkceWithAuthorizationCodeGrant": True}


def document_credential_schemes(schema: dict[str, Any], *, basic_auth: bool) -> None:
    """List the API key, and HTTP Basic when it is on, wherever the OAuth2 scheme is required.

    Bastion reads those credentials inside its one security dependency
    (``bastion.api.deps.credentials``), so FastAPI documents only the OAuth2
    scheme; with ``BASIC_AUTH`` off, Authorize must not offer Basic at all.
    """
    schemes = [api_key_scheme, basic_scheme] if basic_auth else [api_key_scheme]
    components = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    for scheme in schemes:
        components[scheme.scheme_name] = jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            requirements = operation.get("security") if isinstance(operation, dict) else None
            scopes = next((r["OAuth2"] for r in requirements or () if "OAuth2" in r), None)
            if requirements is not None and scopes is not None:  # the same scopes, as for a token
                requirements += [{scheme.scheme_name: list(scopes)} for scheme in schemes]
