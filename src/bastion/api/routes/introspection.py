"""What other services ask of Bastion: token introspection (RFC 7662) and userinfo (OIDC)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from bastion.api.client_auth import INTROSPECTION_SECURITY, introspection_caller
from bastion.api.deps import CurrentPrincipal
from bastion.api.oauth_params import form_body, read_oauth_form
from bastion.api.responses import errors
from bastion.api.schemas import IntrospectForm, IntrospectionOut, UserInfoOut
from bastion.errors import InsufficientScope
from bastion.runtime import Runtime
from bastion.scopes import ME, OPENID, format_scope

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/introspect",
    response_model=IntrospectionOut,
    response_model_exclude_none=True,
    responses=errors(400, 401, 403, 413, 429),
    openapi_extra={**INTROSPECTION_SECURITY, **form_body(IntrospectForm)},
)
async def introspect(request: Request) -> Response:
    """RFC 7662: ``active: true`` and the token's claims only while its session and user stand.

    The caller is a confidential client (HTTP Basic ``client_id:client_secret``), or
    authenticates with an API key (or token) carrying ``tokens:introspect``.
    """
    # No dependencies: a resource server may ask on every request it serves, and each
    # one costs FastAPI's solver more than the work it does here.
    runtime: Runtime = request.app.state.runtime
    await introspection_caller(request)
    form = await read_oauth_form(request, IntrospectForm)
    found = await runtime.principals.introspect(form.token)
    if found is None:
        return _answer(IntrospectionOut(active=False))
    claims = found.claims
    return _answer(IntrospectionOut(
        active=True,
        scope=format_scope(found.scopes),
        sub=claims.subject,
        aud=claims.audience,
        exp=claims.expires_at,
        iat=claims.issued_at,
        iss=runtime.codec.issuer,
        sid=claims.session_id,
        username=found.username,
        client_id=claims.client_id,
        token_type="Bearer",
    ))


def _answer(body: IntrospectionOut) -> Response:
    # Serialized here, once: a resource server may ask on every request it serves.
    return Response(
        body.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/userinfo", response_model=UserInfoOut, responses=errors(401, 403, 429))
async def userinfo(principal: CurrentPrincipal) -> UserInfoOut:
    """OpenID Connect Core 5.3: the claims of the token's user (scope ``openid`` or ``me``)."""
    if not principal.scopes & {OPENID, ME}:
        raise InsufficientScope(OPENID)
    user = principal.user
    return UserInfoOut(
        sub=user.id, preferred_username=user.username, name=user.full_name, email=user.email
    )
