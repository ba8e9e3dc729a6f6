"""The kit's errors as HTTP answers: RFC 6750 challenges and ``{"detail": ...}`` bodies, as Bastion."""

from __future__ import annotations

from fastapi import HTTPException

from bastion_resource.errors import (
    BastionUnavailable,
    InsufficientScope,
    InvalidToken,
    NotAuthenticated,
    ResourceError,
)


def _quoted(text: str) -> str:
    """A safe RFC 6750 quoted-string: no quote, backslash or control character inside."""
    return "".join(c for c in text if c.isprintable() and c not in '"\\')


def http_error(exc: ResourceError) -> HTTPException:
    """The answer to ``exc``: 401 with a challenge, 403 naming the scope, or 503 to retry."""
    if isinstance(exc, InvalidToken):
        challenge = f'Bearer error="invalid_token", error_description="{_quoted(exc.message)}"'
        return HTTPException(401, exc.message, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, InsufficientScope):
        scope = _quoted(" ".join(exc.missing))
        challenge = f'Bearer error="insufficient_scope", scope="{scope}"'
        return HTTPException(403, exc.message, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, BastionUnavailable):
        return HTTPException(503, exc.message, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, NotAuthenticated):
        return HTTPException(401, exc.message, headers={"WWW-Authenticate": "Bearer"})
    return HTTPException(401, exc.message, headers={"WWW-Authenticate": "Bearer"})
