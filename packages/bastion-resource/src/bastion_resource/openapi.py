"""The OpenAPI security scheme: Bastion's token endpoint, so Swagger's "Authorize" gets a token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Literal
from urllib.parse import quote

from fastapi import Request
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowAuthorizationCode, OAuthFlowPassword, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from bastion_resource.principal import Principal

Flow = Literal["password", "authorization_code"]


def oauth2_model(
    *, issuer: str, audience: str, flows: Collection[Flow], scopes: dict[str, str]
) -> OAuth2Model:
    """OAuth2 flows at Bastion (absolute URLs), asking for tokens for ``audience`` (RFC 8707)."""
    base = issuer.rstrip("/")
    resource = quote(audience, safe="")
    token_url = f"{base}/auth/token?resource={resource}"
    password = OAuthFlowPassword(tokenUrl=token_url, scopes=scopes) if "password" in flows else None
    code = (
        OAuthFlowAuthorizationCode(
            authorizationUrl=f"{base}/authorize?resource={resource}",
            tokenUrl=token_url,
            scopes=scopes,
        )
        if "authorization_code" in flows
        else None
    )
    return OAuth2Model(
        flows=OAuthFlows(password=password, authorizationCode=code),
        description=f"An access token from Bastion ({base}) for {audience}.",
    )


def declare_scopes(model: OAuth2Model, scopes: Mapping[str, str]) -> None:
    """List ``scopes`` in every flow of ``model``, so Swagger's Authorize dialog offers them."""
    for flow in (model.flows.password, model.flows.authorizationCode):
        if flow is not None:
            for name, description in scopes.items():
                flow.scopes.setdefault(name, description)


class BearerGuard(SecurityBase):
    """A FastAPI security dependency: hands the ``Authorization`` header to ``check``.

    Being a ``SecurityBase``, it puts its scheme into OpenAPI, with the scopes of
    the ``Security(...)`` that uses it.
    """

    def __init__(
        self,
        *,
        model: OAuth2Model,
        scheme_name: str,
        check: Callable[[str | None, list[str], bool], Awaitable[Principal]],
        introspect: bool,
    ) -> None:
        self.model = model
        self.scheme_name = scheme_name
        self._check = check
        self._introspect = introspect

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Principal:
        authorization = request.headers.get("authorization")
        return await self._check(authorization, security_scopes.scopes, self._introspect)
