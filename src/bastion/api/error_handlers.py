"""The one place where Bastion's errors become HTTP: status, body and challenge."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from bastion.errors import (
    AuthenticationError,
    BastionError,
    BodyTooLarge,
    Conflict,
    InsufficientScope,
    InvalidCredentialsGrant,
    InvalidToken,
    NotFound,
    OAuthError,
    PermissionDenied,
    PolicyViolation,
    Throttled,
)

OAUTH_PATHS = frozenset({"/auth/token", "/auth/revoke"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _challenges(request: Request) -> list[str]:
    challenges = ["Bearer"]
    if request.app.state.runtime.settings.basic_auth:
        challenges.append('Basic realm="bastion"')
    return challenges


def _json(status: int, body: dict[str, str], headers: list[tuple[str, str]] = ()) -> Response:  # type: ignore[assignment]
    response = JSONResponse(body, status_code=status)
    for name, value in headers:
        response.headers.append(name, value)
    return response


def render(request: Request, exc: BastionError) -> Response:
    detail = {"detail": exc.message}
    if isinstance(exc, Throttled):
        return _json(429, detail, [("Retry-After", str(exc.retry_after))])
    if isinstance(exc, OAuthError):
        body = {**detail, "error": exc.error, "error_description": exc.message}
        headers = list(NO_STORE.items())
        if isinstance(exc, InvalidCredentialsGrant):
            headers.append(("WWW-Authenticate", "Bearer"))
        return _json(exc.status_code, body, headers)
    if isinstance(exc, InvalidToken):
        return _json(401, detail, [("WWW-Authenticate", 'Bearer error="invalid_token"')])
    if isinstance(exc, AuthenticationError):
        return _json(401, detail, [("WWW-Authenticate", c) for c in _challenges(request)])
    if isinstance(exc, InsufficientScope):
        challenge = f'Bearer error="insufficient_scope", scope="{exc.scope}"'
        return _json(403, detail, [("WWW-Authenticate", challenge)])
    status = {
        NotFound: 404,
        Conflict: 409,
        PolicyViolation: 422,
        PermissionDenied: 403,
        BodyTooLarge: 413,
    }
    for kind, code in status.items():
        if isinstance(exc, kind):
            return _json(code, detail)
    return _json(400, detail)


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
