"""The authorization endpoint (OAuth 2.1, RFC 6749 4.1): hosted login, consent, codes; and logout.

``GET /authorize`` checks the request; an unknown client or a redirect URI it
did not register gets a page, never a redirect (no open redirector). Other
errors go back to the client (RFC 6749 4.1.2.1) with ``error``, ``state`` and
``iss`` (RFC 9207). A ``resource`` (RFC 8707) names the registered API the
access token is to be for: the scopes asked for are then that API's. A user
without a browser session gets the login page (and the second-factor page
when the account has one), a third-party client the consent page, then the
client its code. The forms post the request back to ``POST /authorize``,
which checks it again from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.api.deps import Client, DbSession, RuntimeDep
from bastion.api.pages import Cookies, render, stylesheet
from bastion.api.routes.account_recovery import kit_of
from bastion.errors import (
    InvalidCredentialsGrant,
    InvalidGrant,
    InvalidToken,
    MfaRequired,
    PermissionDenied,
    Throttled,
)
from bastion.runtime import Runtime
from bastion.scopes import parse_scope
from bastion.services import (
    audit,
    authorization_codes,
    browser_sessions,
    consents,
    mfa,
    mfa_login,
)
from bastion.services.access_catalog import Catalog
from bastion.services.auth_state import UserView
from bastion.services.authorization_codes import CODE_CHALLENGE, CodeGrant
from bastion.services.browser_sessions import SignedIn
from bastion.services.clients import AUTHORIZATION_CODE, ClientView
from bastion.services.token_grants import ClientInfo

router = APIRouter(tags=["oauth"], include_in_schema=False)
PARAMETERS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt",
)
MAX_PARAMETER = 2000


class _Refused(Exception):
    """An error that must not redirect: the client or its redirect URI is not known."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Denied(Exception):
    """An error to send back to the client's redirect URI (RFC 6749 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: ClientView
    redirect_uri: str
    state: str | None
    params: Mapping[str, str]  # what the forms post back
    scopes: frozenset[str] = frozenset()
    nonce: str | None = None
    code_challenge: str = ""
    prompt: frozenset[str] = frozenset()
    resource: str | None = None


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name, [])
    if len(values) > 1:
        raise _Refused(f"the parameter {name} is given more than once")
    if values and (len(values[0]) > MAX_PARAMETER or not values[0].isprintable()):
        raise _Refused(f"the parameter {name} is malformed")
    return values[0] if values else None


async def _parse(runtime: Runtime, params: Mapping[str, list[str]]) -> AuthorizationRequest:
    """The authorization request, or why not: first what cannot redirect, then what can."""
    values = {name: _single(params, name) for name in PARAMETERS}
    client = await runtime.clients.get(values["client_id"] or "")
    if client is None:
        raise _Refused("unknown client")
    redirect_uri = values["redirect_uri"]
    if redirect_uri is None and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        raise _Refused("the redirect URI is not registered for this client")
    values["resource"] = _resource(params)
    kept = {name: value for name, value in values.items() if value is not None}
    request = AuthorizationRequest(
        client=client, redirect_uri=redirect_uri, state=values["state"], params=kept
    )
    return await _checked(runtime, request, values)


async def _checked(
    runtime: Runtime, request: AuthorizationRequest, values: Mapping[str, str | None]
) -> AuthorizationRequest:
    client = request.client
    if values["response_type"] != "code":
        raise _Denied("unsupported_response_type", "response_type must be code")
    if AUTHORIZATION_CODE not in client.grant_types:
        raise _Denied("unauthorized_client", "this client may not use authorization_code")
    challenge, method = values["code_challenge"], values["code_challenge_method"]
    if challenge is None:
        raise _Denied("invalid_request", "PKCE is required: send code_challenge (S256)")
    if method != "S256":
        raise _Denied("invalid_request", "code_challenge_method must be S256 (plain is refused)")
    if not CODE_CHALLENGE.fullmatch(challenge):
        raise _Denied("invalid_request", "code_challenge is not a base64url SHA-256 digest")
    catalog = await runtime.catalog.current()
    resource = values["resource"]
    if resource is not None and resource not in catalog.resources:
        raise _Denied("invalid_target", "unknown resource: no API is registered as it")
    scopes = _scopes(catalog, client, parse_scope(values["scope"]), resource)
    prompt = parse_scope(values["prompt"])
    if not prompt <= {"none", "login", "consent"} or ("none" in prompt and len(prompt) > 1):
        raise _Denied("invalid_request", "prompt must be none, login or consent")
    return AuthorizationRequest(
        client=client, redirect_uri=request.redirect_uri, state=request.state,
        params=request.params, scopes=scopes, nonce=values["nonce"], code_challenge=challenge,
        prompt=prompt, resource=resource,
    )


def _resource(params: Mapping[str, list[str]]) -> str | None:
    """The ``resource`` (RFC 8707): one, though the RFC allows several; a token has one aud."""
    values = params.get("resource", [])
    if len(values) > 1:
        raise _Denied("invalid_target", "one resource per request: a token is for one API")
    if values and (len(values[0]) > MAX_PARAMETER or not values[0].isprintable()):
        raise _Denied("invalid_target", "the resource is malformed")
    return values[0] if values else None


def _scopes(
    catalog: Catalog, client: ClientView, requested: frozenset[str], resource: str | None
) -> frozenset[str]:
    """What the request asks for (by default all the client may); for a resource, its scopes."""
    if catalog.unknown_scopes(requested):
        raise _Denied("invalid_scope", "unknown scope")
    if not requested <= client.scopes:
        raise _Denied("invalid_scope", "the scope exceeds what this client may ask for")
    if resource is None:
        return requested or client.scopes
    offered = catalog.allowed_for(resource) | catalog.ungated
    if not requested <= offered:
        raise _Denied("invalid_scope", "the scope is not one of the resource's")
    return requested or client.scopes & offered


def _back_to_client(runtime: Runtime, uri: str, params: dict[str, str | None]) -> Response:
    """303 to the client's redirect URI with ``params`` and ``iss`` (RFC 9207) in its query."""
    query = urlencode(
        {**{k: v for k, v in params.items() if v is not None}, "iss": runtime.settings.issuer}
    )
    separator = "&" if urlsplit(uri).query else "?"
    return RedirectResponse(
        uri + separator + query, status_code=303, headers={"Cache-Control": "no-store"}
    )


def _denied(runtime: Runtime, request: AuthorizationRequest, error: _Denied) -> Response:
    return _back_to_client(runtime, request.redirect_uri, {
        "error": error.error, "error_description": error.description, "state": request.state,
    })


class _Flow:
    """One round of the hosted login for one request: the pages and the code."""

    def __init__(
        self, http: Request, runtime: Runtime, db: AsyncSession, info: ClientInfo,
        request: AuthorizationRequest,
    ) -> None:
        self.http = http
        self.runtime = runtime
        self.db = db
        self.info = info
        self.request = request
        self.cookies = Cookies(issuer=runtime.settings.issuer, digester=runtime.digester)

    def page(self, name: str, *, status: int = 200, **context: object) -> Response:
        seed, new = self.cookies.csrf_seed(self.http)
        response = render(
            self.http, name, status=status, form_target=self.request.redirect_uri,
            csrf_token=self.cookies.csrf_token(seed), client_name=self.request.client.name,
            request_params=sorted(self.request.params.items()), **context,
        )
        if new:
            self.cookies.set(response, self.cookies.csrf, seed, max_age=None)
        return response

    def login_page(self, *, error: str | None = None, status: int = 200,
                   username: str = "") -> Response:
        if "none" in self.request.prompt:
            return _denied(self.runtime, self.request, _Denied("login_required", "sign in first"))
        return self.page("login.html", status=status, error=error, username=username)

    async def signed_in(self) -> SignedIn | None:
        cookie = self.http.cookies.get(self.cookies.session)
        return await browser_sessions.current(
            self.db, digester=self.runtime.digester, cookie=cookie
        )

    async def start_session(self, user: UserView) -> tuple[SignedIn, str]:
        return await browser_sessions.start(
            self.db, digester=self.runtime.digester, user=user,
            ttl=self.runtime.oauth.browser_session_ttl, current=await self.signed_in(),
        )

    async def needs_consent(self, signed: SignedIn) -> bool:
        if self.request.client.first_party:
            return False
        if "consent" in self.request.prompt:
            return True
        allowed = await consents.consented(
            self.db, user_id=signed.user.id, client_id=self.request.client.id
        )
        return not self.request.scopes <= allowed

    async def consent_or_code(self, signed: SignedIn) -> Response:
        if await self.needs_consent(signed):
            if "none" in self.request.prompt:
                return _denied(self.runtime, self.request,
                               _Denied("consent_required", "the user has not allowed this"))
            catalog = await self.runtime.catalog.current()
            scopes = [(name, catalog.scopes.get(name, "")) for name in sorted(self.request.scopes)]
            return self.page("consent.html", username=signed.user.username, scopes=scopes,
                             resource=self.request.resource)
        return await self.code(signed)

    async def code(self, signed: SignedIn) -> Response:
        catalog = await self.runtime.catalog.current()
        code = await authorization_codes.issue(
            self.db, digester=self.runtime.digester, ttl=self.runtime.oauth.code_ttl,
            grant=CodeGrant(
                client_id=self.request.client.id, user_id=signed.user.id,
                redirect_uri=self.request.redirect_uri,
                scopes=self.request.scopes & catalog.permitted(signed.user.roles),
                code_challenge=self.request.code_challenge, nonce=self.request.nonce,
                auth_time=signed.auth_time, browser_session_id=signed.session_id,
                resource=self.request.resource,
            ),
        )
        return _back_to_client(
            self.runtime, self.request.redirect_uri, {"code": code, "state": self.request.state}
        )

    async def password(self, form: Mapping[str, str]) -> Response:
        identifier, password = form.get("username", ""), form.get("password", "")
        if not identifier or not password or not identifier.isprintable():
            return self.login_page(error="Enter your username and password.", status=400)
        try:
            user = await self.runtime.grants.check_password(
                self.db, identifier=identifier[:320], password=password[:1024], client=self.info
            )
        except MfaRequired as pending:
            mfa_token = await mfa.challenge(
                self.db, digester=self.runtime.digester, user_id=pending.user_id,
                login=identifier, scope=None, resource=None,
                ttl=self.runtime.settings.mfa_token_ttl, ip=self.info.ip,
            )
            return self.page("mfa.html", mfa_token=mfa_token)
        except InvalidCredentialsGrant:
            return self.login_page(error="Incorrect username or password.", status=401,
                                   username=identifier[:320])
        return await self.signed_in_as(user)

    async def second_factor(self, form: Mapping[str, str]) -> Response:
        try:
            user, _method, _pending = await mfa_login.second_factor(
                self.db, self.runtime.grants, kit_of(self.runtime),
                mfa_token=form.get("mfa_token", ""), code=form.get("code", ""), client=self.info,
            )
        except InvalidGrant as exc:
            return self.login_page(error=exc.message, status=401)
        return await self.signed_in_as(UserView.of(user))

    async def signed_in_as(self, user: UserView) -> Response:
        """A browser session for ``user``, whose credentials this request has just checked."""
        signed, cookie = await self.start_session(user)
        response = await self.consent_or_code(signed)
        self.cookies.set(
            response, self.cookies.session, cookie,
            max_age=self.runtime.oauth.browser_session_ttl,
        )
        return response

    async def consent(self, form: Mapping[str, str]) -> Response:
        signed = await self.signed_in()
        if signed is None:
            return self.login_page(error="Your sign-in has ended: sign in again.")
        if form.get("decision") != "allow":
            return _denied(self.runtime, self.request,
                           _Denied("access_denied", "the user denied the request"))
        await consents.remember(
            self.db, user_id=signed.user.id, client_id=self.request.client.id,
            scopes=self.request.scopes, ip=self.info.ip,
        )
        return await self.code(signed)


def _error_page(http: Request, message: str, status: int = 400) -> Response:
    return render(http, "error.html", status=status, message=message)


async def _request_or_answer(
    http: Request, runtime: Runtime, params: Mapping[str, list[str]]
) -> AuthorizationRequest | Response:
    """The checked request, or the answer to a bad one (a page, or back to the client)."""
    try:
        return await _parse(runtime, params)
    except _Refused as refused:
        return _error_page(http, refused.message)
    except _Denied as denied:
        values = {name: _single(params, name) for name in ("client_id", "redirect_uri", "state")}
        client = await runtime.clients.get(values["client_id"] or "")
        assert client is not None
        uri = values["redirect_uri"] or client.redirect_uris[0]
        return _back_to_client(runtime, uri, {
            "error": denied.error, "error_description": denied.description,
            "state": values["state"],
        })


@router.get("/authorize")
async def authorize(http: Request, runtime: RuntimeDep, db: DbSession, info: Client) -> Response:
    """Start (or, signed in, continue) a sign-in for a client."""
    checked = await _request_or_answer(http, runtime, _multi(http.query_params.multi_items()))
    if isinstance(checked, Response):
        return checked
    flow = _Flow(http, runtime, db, info, checked)
    signed = await flow.signed_in()
    if signed is None or "login" in checked.prompt:
        return flow.login_page()
    return await flow.consent_or_code(signed)


@router.post("/authorize")
async def authorize_form(
    http: Request, runtime: RuntimeDep, db: DbSession, info: Client
) -> Response:
    """The login, second-factor and consent forms, each with the request it belongs to."""
    form = await http.form()
    fields = _multi((key, value) for key, value in form.multi_items() if isinstance(value, str))
    checked = await _request_or_answer(http, runtime, fields)
    if isinstance(checked, Response):
        return checked
    flow = _Flow(http, runtime, db, info, checked)
    single = {key: values[0] for key, values in fields.items() if len(values) == 1}
    if not flow.cookies.csrf_ok(http, single.get("csrf_token")):
        return _error_page(http, "This form has expired or did not come from this page: "
                                 "go back, reload and try again.", status=403)
    action = single.get("action")
    try:
        if action == "login":
            return await flow.password(single)
        if action == "mfa":
            return await flow.second_factor(single)
        if action == "consent":
            return await flow.consent(single)
    except Throttled as throttled:
        response = flow.login_page(error="Too many failed attempts: try again later.", status=429)
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    except PermissionDenied as refused:
        return flow.login_page(error=refused.message, status=403)
    return _error_page(http, "unknown form action")


def _multi(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in items:
        grouped.setdefault(key, []).append(value)
    return grouped


@router.get("/authorize/style.css")
async def style() -> Response:
    return PlainTextResponse(
        stylesheet(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/logout")
async def logout(
    http: Request,
    runtime: RuntimeDep,
    db: DbSession,
    info: Client,
    id_token_hint: Annotated[str | None, Query(max_length=4096)] = None,
    post_logout_redirect_uri: Annotated[str | None, Query(max_length=2000)] = None,
    client_id: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """OpenID Connect RP-initiated logout: the browser session ends, with the sessions its
    codes opened (their refresh tokens stop working); back to the client if asked."""
    cookies = Cookies(issuer=runtime.settings.issuer, digester=runtime.digester)
    signed = await browser_sessions.current(
        db, digester=runtime.digester, cookie=http.cookies.get(cookies.session)
    )
    if signed is not None:
        ended = await browser_sessions.end(db, runtime.state, session_id=signed.session_id)
        audit.record(db, "logout", user_id=signed.user.id, ip=info.ip, detail={
            "via": "end_session", "browser_session_id": signed.session_id,
            "sessions": len(ended),
        })
    if id_token_hint:
        try:
            audience = runtime.oauth.id_tokens.read_hint(id_token_hint).get("aud")
        except InvalidToken:
            return _error_page(http, "the id_token_hint is not one of ours")
        if client_id is not None and audience != client_id:
            return _error_page(http, "the id_token_hint is for another client")
        client_id = audience if isinstance(audience, str) else None
    response: Response = render(http, "signed_out.html")
    if post_logout_redirect_uri is not None:
        client = await runtime.clients.get(client_id or "")
        if client is None or post_logout_redirect_uri not in client.post_logout_redirect_uris:
            return _error_page(http, "the post_logout_redirect_uri is not registered")
        query = urlencode({"state": state}) if state else ""
        separator = "&" if urlsplit(post_logout_redirect_uri).query else "?"
        target = post_logout_redirect_uri + (separator + query if query else "")
        response = RedirectResponse(target, status_code=303)
    cookies.clear(response, cookies.session)
    return response

