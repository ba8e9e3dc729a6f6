"""OpenAPI descriptions of the error responses every route may give."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorOut(BaseModel):
    detail: Any


class OAuthErrorOut(BaseModel):
    detail: str
    error: str
    error_description: str


_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing, invalid or expired credentials",
    403: "Authenticated, but not allowed (e.g. a missing scope)",
    404: "Not found, or not yours to see",
    409: "Username or email already taken",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many failed attempts; see Retry-After",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in sorted(codes)
    }


AUTH_ERRORS = errors(401, 403, 413, 422, 429)
OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    **{
        code: {"model": OAuthErrorOut, "description": _DESCRIPTIONS[code]}
        for code in (400, 401, 403, 429)
    },
    **errors(413),
}
