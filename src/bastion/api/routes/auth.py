"""Accounts and tokens: register, the token endpoint, revocation, logout, sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from bastion.api.deps import (
    Client,
    CurrentPrincipal,
    DbSession,
    Pagination,
    RuntimeDep,
    requires,
)
from bastion.api.oauth_grants import CLIENT_GRANTS, client_grant, refresh_client
from bastion.api.oauth_params import form_body, oauth_form
from bastion.api.params import ObjectId
from bastion.api.responses import AUTH_ERRORS, OAUTH_ERRORS, errors
from bastion.api.routes.account_recovery import kit_of
from bastion.api.schemas import (
    Page,
    RegisterIn,
    RevokeForm,
    SessionOut,
    TokenForm,
    TokenOut,
    UserOut,
)
from bastion.errors import InvalidRequest, PermissionDenied, UnsupportedGrantType
from bastion.scopes import ME
from bastion.services import audit, email_verification, mfa_login, sessions, users
from bastion.services.principals import Principal

router = APIRouter(prefix="/auth", tags=["auth"])



@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=errors(400, 403, 409, 413, 422, 429),
)
async def register(body: RegisterIn, db: DbSession, runtime: RuntimeDep, client: Client) -> object:
    """Create an account and mail it a link that verifies its address.

    403 while ``REGISTRATION`` is closed. Every well-formed attempt, whether it
    succeeds or not (a taken name is a 409), counts toward the per-IP quota
    (``REGISTER_MAX_PER_IP`` an hour): past it, 429 with ``Retry-After``.
    """
    if runtime.settings.registration == "closed":
        raise PermissionDenied("registration is closed: an administrator creates accounts")
    await kit_of(runtime).register_ip_quota.take(client.ip or "unknown")
    user = await users.create_user(
        db,
        passwords=runtime.passwords,
        username=body.username,
        email=str(body.email),
        password=body.password,
        full_name=body.full_name,
        ip=client.ip,
    )
    await email_verification.send_verification(
        db, kit_of(runtime), digester=runtime.digester, user=user, ip=client.ip
    )
    return user


def _resource(form: TokenForm, request: Request) -> str | None:
    """RFC 8707 ``resource``, from the form or the token URL's query.

    The query form lets a resource service's Swagger UI name its API in the
    token URL it declares (``/auth/token?resource=...``): Swagger's password
    flow cannot add a form field. Both, and different, is a malformed request.
    """
    in_query = request.query_params.getlist("resource")
    if len(in_query) > 1 or (in_query and form.resource and in_query[0] != form.resource):
        raise InvalidRequest("resource is given more than once")
    return form.resource or (in_query[0] if in_query else None)


@router.post(
    "/token",
    response_model=TokenOut,
    response_model_exclude_none=True,
    responses=OAUTH_ERRORS,
    openapi_extra=form_body(TokenForm),
)
async def token(
    request: Request,
    response: Response,
    db: DbSession,
    runtime: RuntimeDep,
    client: Client,
    form: Annotated[TokenForm, Depends(oauth_form(TokenForm))],
) -> TokenOut:
    """OAuth 2.0 token endpoint (RFC 6749): the password and refresh_token grants, and
    ``urn:bastion:mfa`` (the second step of a login whose account has a second factor)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    resource = _resource(form, request)
    if form.grant_type in CLIENT_GRANTS:
        return await client_grant(request, db, runtime, client, form, resource)
    if form.grant_type in (None, "", "password"):
        if not runtime.settings.password_grant:
            raise UnsupportedGrantType("the password grant is off: use authorization_code")
        if not form.username or form.password is None:
            raise InvalidRequest("username and password are required")
        tokens = await runtime.grants.password_grant(
            db, identifier=form.username, password=form.password, scope=form.scope,
            client=client, resource=resource,
        )
    elif form.grant_type == "refresh_token":
        if not form.refresh_token:
            raise InvalidRequest("refresh_token is required")
        tokens = await runtime.grants.refresh_grant(
            db, refresh_token=form.refresh_token, scope=form.scope, client=client,
            resource=resource, client_id=await refresh_client(request, form, runtime.clients),
        )
    elif form.grant_type == mfa_login.MFA_GRANT:
        if not form.mfa_token or not form.code:
            raise InvalidRequest("mfa_token and code are required")
        tokens = await mfa_login.mfa_grant(
            db, runtime.grants, kit_of(runtime), mfa_token=form.mfa_token, code=form.code,
            client=client, resource=resource,
        )
    else:
        raise UnsupportedGrantType()
    return TokenOut(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        scope=tokens.scope,
    )


@router.post(
    "/revoke",
    # The answer has no body: declared so, rather than as FastAPI's default JSON.
    response_class=Response,
    responses={200: {"description": "Revoked, or nothing to revoke"}, **OAUTH_ERRORS},
    openapi_extra=form_body(RevokeForm),
)
async def revoke(
    db: DbSession,
    runtime: RuntimeDep,
    client: Client,
    form: Annotated[RevokeForm, Depends(oauth_form(RevokeForm))],
) -> Response:
    """RFC 7009: always 200; a known refresh or access token's session ends."""
    user_id = await runtime.grants.revoke(db, token=form.token)
    if user_id is not None:
        audit.record(db, "logout", user_id=user_id, ip=client.ip, detail={"via": "revoke"})
    return Response(status_code=200, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post("/logout", status_code=204, responses=AUTH_ERRORS)
async def logout(
    principal: CurrentPrincipal, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """End the session of the presented access token."""
    if principal.session_id is not None:
        await sessions.revoke_session(db, runtime.state, session_id=principal.session_id)
    audit.record(db, "logout", user_id=principal.user.id, ip=client.ip)


@router.post("/logout-all", status_code=204, responses=AUTH_ERRORS)
async def logout_all(
    principal: CurrentPrincipal, db: DbSession, runtime: RuntimeDep, client: Client
) -> None:
    """End every session of the caller."""
    ended = await sessions.revoke_user_sessions(db, runtime.state, user_id=principal.user.id)
    audit.record(
        db, "logout", user_id=principal.user.id, ip=client.ip, detail={"sessions": len(ended)}
    )


@router.get("/sessions", response_model=Page[SessionOut], responses=AUTH_ERRORS)
async def list_sessions(
    principal: Annotated[Principal, requires(ME)], db: DbSession, page: Pagination
) -> Page[SessionOut]:
    rows, total = await sessions.active_sessions(
        db, user_id=principal.user.id, limit=page.limit, offset=page.offset
    )
    items = [
        SessionOut(
            id=row.id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            user_agent=row.user_agent,
            ip=row.ip,
            current=row.id == principal.session_id,
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.delete(
    "/sessions/{session_id}", status_code=204, responses=errors(401, 403, 404, 429)
)
async def delete_session(
    session_id: ObjectId,
    principal: Annotated[Principal, requires(ME)],
    db: DbSession,
    runtime: RuntimeDep,
    client: Client,
) -> None:
    await sessions.revoke_session(
        db, runtime.state, session_id=session_id, user_id=principal.user.id
    )
    audit.record(
        db, "logout", user_id=principal.user.id, ip=client.ip, detail={"session_id": session_id}
    )
