"""The one place where Bastion's errors become HTTP: status, body and challenge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bastion.errors import (
    AccountDisabled,
    AuthenticationError,
    BastionError,
    BodyTooLarge,
    Conflict,
    EmailNotVerified,
    InsufficientScope,
    InvalidCredentialsGrant,
    InvalidToken,
    MfaRequired,
    NotFound,
    OAuthError,
    PermissionDenied,
    PolicyViolation,
    ServiceUnavailable,
    Throttled,
)
from bastion.outages import CANDIDATES, OutageLog, failed_dependency

OAUTH_PATHS = frozenset({"/auth/token", "/auth/revoke", "/auth/introspect"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _challenges(request: Request) -> list[str]:
    """Bearer; Basic too, when it is on, to a request that sent Basic credentials itself.

    A Basic challenge makes a browser pop its native sign-in dialog, so a page
    that never used Basic (Swagger UI, a single-page app) must never receive one.
    """
    challenges = ["Bearer"]
    scheme = request.headers.get("authorization", "").partition(" ")[0]
    if request.app.state.runtime.settings.basic_auth and scheme.lower() == "basic":
        challenges.append('Basic realm="bastion"')
    return challenges


_STATUS: dict[type[BastionError], int] = {
    NotFound: 404,
    Conflict: 409,
    PolicyViolation: 422,
    PermissionDenied: 403,
    BodyTooLarge: 413,
}


def _json(status: int, body: dict[str, str], headers: list[tuple[str, str]]) -> Response:
    response = JSONResponse(body, status_code=status)
    for name, value in headers:
        response.headers.append(name, value)
    return response


def _status_and_headers(request: Request, exc: BastionError) -> tuple[int, list[tuple[str, str]]]:
    if isinstance(exc, Throttled):
        return 429, [("Retry-After", str(exc.retry_after))]
    if isinstance(exc, ServiceUnavailable):
        return 503, [("Retry-After", str(exc.retry_after))]
    if isinstance(exc, InvalidCredentialsGrant):
        return 401, [("WWW-Authenticate", "Bearer")]
    if isinstance(exc, OAuthError):
        return exc.status_code, []
    if isinstance(exc, InvalidToken):
        return 401, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
    if isinstance(exc, AuthenticationError):
        return 401, [("WWW-Authenticate", c) for c in _challenges(request)]
    if isinstance(exc, InsufficientScope):
        return 403, [("WWW-Authenticate", f'Bearer error="insufficient_scope", scope="{exc.scope}"')]
    for kind, code in _STATUS.items():
        if isinstance(exc, kind):
            return code, []
    return 400, []


def _oauth_error_code(exc: BastionError) -> str:
    if isinstance(exc, OAuthError):
        return exc.error
    if isinstance(exc, ServiceUnavailable):
        return "temporarily_unavailable"
    # A throttled, disabled or unverified account cannot use its credentials: invalid_grant.
    refused = Throttled | AccountDisabled | EmailNotVerified
    return "invalid_grant" if isinstance(exc, refused) else "invalid_request"


def render(request: Request, exc: BastionError) -> Response:
    """The contract's answer to ``exc``; on the OAuth endpoints, also RFC 6749's error fields."""
    status, headers = _status_and_headers(request, exc)
    body = {"detail": exc.message}
    if isinstance(exc, OAuthError) or request.url.path in OAUTH_PATHS:
        body.update(error=_oauth_error_code(exc), error_description=exc.message)
        headers.extend(NO_STORE.items())
    if isinstance(exc, MfaRequired) and exc.mfa_token is not None:
        body["mfa_token"] = exc.mfa_token  # shown once; grant_type=urn:bastion:mfa redeems it
    return _json(status, body, headers)


async def _bastion_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BastionError)
    return render(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if request.url.path in OAUTH_PATHS:
        message = "malformed request: " + "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ())[1:])}: {error.get('msg', '')}"
            for error in exc.errors()
        )
        body = {"detail": message, "error": "invalid_request", "error_description": message}
        return _json(400, body, list(NO_STORE.items()))
    # Never echo the offending input back: it may be a password.
    errors = [{k: v for k, v in error.items() if k not in ("input", "url")} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _infrastructure_errors(outages: OutageLog) -> Handler:
    """A handler answering 503 for a dependency that is down, and passing anything else on.

    Handled here, inside the middleware, the 503 carries the request id and the
    security headers, and the connection stays open for the client's next request.
    """

    async def handle(request: Request, exc: Exception) -> Response:
        dependency = failed_dependency(exc)
        if dependency is None:
            raise exc
        outages.report(dependency, exc)
        return render(request, ServiceUnavailable(dependency))

    return handle


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: a JSON 500 that tells the client to close the connection.

    Starlette sends it from outside every middleware and then raises the error on
    for the server to log, and uvicorn closes the connection; said in the answer,
    the client's next request goes on a new connection instead of failing.
    """
    headers = {"Connection": "close", "X-Content-Type-Options": "nosniff", **NO_STORE}
    return JSONResponse({"detail": "internal error"}, status_code=500, headers=headers)


def install(app: FastAPI) -> None:
    if Exception not in app.exception_handlers:  # an embedding app's own comes first
        app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    infrastructure = _infrastructure_errors(OutageLog())
    for kind in CANDIDATES:
        app.add_exception_handler(kind, infrastructure)
