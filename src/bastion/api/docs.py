"""Swagger UI at ``/docs`` from assets the app serves itself: no CDN, so it works offline."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

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


def drop_security_scheme(schema: dict[str, Any], name: str) -> None:
    """Remove a credential scheme from the schema and from every operation's requirements.

    With ``BASIC_AUTH`` off, Authorize must not offer HTTP Basic: the server would ignore it.
    """
    schema.get("components", {}).get("securitySchemes", {}).pop(name, None)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "security" in operation:
                operation["security"] = [r for r in operation["security"] if name not in r]
