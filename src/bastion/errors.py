"""Bastion's error vocabulary: domain exceptions with no HTTP in them.

``bastion.api.error_handlers`` is the one place that turns them into status
codes, bodies and ``WWW-Authenticate`` challenges.
"""

from __future__ import annotations


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    message = "request failed"

    def __init__(self, message: str | None = None, *, keep_writes: bool = False) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        # True when the unit of work must still commit what it recorded
        # (an audit event, a revoked session) although the request fails.
        self.keep_writes = keep_writes


class NotFound(BastionError):
    message = "not found"


class Conflict(BastionError):
    message = "already exists"


class PolicyViolation(BastionError):
    """Input that is well-formed but refused by a rule (e.g. password policy)."""

    message = "input refused by policy"


class PermissionDenied(BastionError):
    message = "not allowed"


class AccountDisabled(PermissionDenied):
    message = "account is disabled"


class AuthenticationError(BastionError):
    """No usable credential: missing, unknown key, wrong Basic password."""

    message = "not authenticated"


class InvalidToken(AuthenticationError):
    """A bearer token that is malformed, forged, expired or revoked."""

    message = "invalid or expired token"


class InsufficientScope(BastionError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"this credential lacks the scope {scope}")
        self.scope = scope


class Throttled(BastionError):
    message = "too many failed attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(keep_writes=True)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(BastionError):
    """A dependency (the database, Redis) does not answer or refuses the work; try again soon."""

    def __init__(self, dependency: str, *, retry_after: int = 5) -> None:
        super().__init__(f"the {dependency} is unavailable; try again shortly")
        self.dependency = dependency
        self.retry_after = max(1, int(retry_after))


class OAuthError(BastionError):
    """An RFC 6749 section 5.2 error of the token or revocation endpoint."""

    error = "invalid_request"
    status_code = 400


class InvalidRequest(OAuthError):
    error = "invalid_request"
    message = "the request is missing a parameter or is malformed"


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    message = "the grant is invalid, expired or revoked"


class InvalidCredentialsGrant(InvalidGrant):
    """Wrong username or password: 401 with a Bearer challenge, as FastAPI's tutorial does."""

    status_code = 401
    message = "incorrect username or password"


class RefreshTokenReused(InvalidGrant):
    """A spent refresh token presented again; its session has been revoked."""

    message = "refresh token already used; the session is revoked"


class InvalidScope(OAuthError):
    error = "invalid_scope"
    message = "the requested scope is invalid or exceeds what was granted"


class InvalidTarget(OAuthError):
    """RFC 8707: the ``resource`` names no registered resource server."""

    error = "invalid_target"
    message = "the requested resource is unknown or not allowed"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    message = "grant_type must be password or refresh_token"


class BodyTooLarge(BastionError):
    message = "request body too large"


class EmailNotVerified(PermissionDenied):
    """``REQUIRE_VERIFIED_EMAIL`` is on and the account has not confirmed its address."""

    message = "the email address of this account is not verified"


class InvalidLinkToken(BastionError):
    """A verification or reset token that is unknown, spent or expired."""

    message = "the link is invalid, expired or already used"


class IncorrectCode(BastionError):
    """A second-factor code that does not match (or was already used)."""

    message = "incorrect or already used code"


class MfaRequired(InvalidCredentialsGrant):
    """The password was right; the second factor is still owed.

    The password grant answers it with an ``mfa_token`` that
    ``grant_type=urn:bastion:mfa`` redeems together with a code.
    """

    error = "mfa_required"
    message = "a second factor is required: send the mfa_token with a code"

    def __init__(self, *, user_id: str) -> None:
        super().__init__(keep_writes=True)
        self.user_id = user_id
        self.mfa_token: str | None = None


class InvalidClient(OAuthError):
    """Client authentication failed: unknown client, wrong or missing secret (RFC 6749 5.2)."""

    error = "invalid_client"
    status_code = 401
    message = "client authentication failed"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant type or response type."""

    error = "unauthorized_client"
    message = "this client is not allowed to use this grant type"


class NoUser(PermissionDenied):
    """A client's own token (client_credentials) on a route that acts for a user."""

    message = "this route acts for a user; a client's own token has none"
