"""What can go wrong when a request is checked: a small exception tree with no HTTP in it."""

from __future__ import annotations


class ResourceError(Exception):
    """Base of every error the kit raises while checking a request."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(ResourceError):
    """The request carries no bearer token."""

    def __init__(self, message: str = "not authenticated") -> None:
        super().__init__(message)


class InvalidToken(ResourceError):
    """The token is malformed, forged, expired, not ours, not for us, or no longer active."""


class UnknownKey(InvalidToken):
    """The token names a ``kid`` that Bastion's key set does not hold."""


class InsufficientScope(ResourceError):
    """The token is valid but lacks scopes the route needs."""

    def __init__(self, missing: tuple[str, ...]) -> None:
        self.missing = missing
        super().__init__(f"this credential lacks the scope {' '.join(missing)}")


class BastionUnavailable(ResourceError):
    """Bastion did not answer in time, or not as it should; the request cannot be decided."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
