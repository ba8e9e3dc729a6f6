"""Protect a FastAPI service with Bastion's access tokens."""

from bastion_resource.errors import (
    BastionUnavailable,
    InsufficientScope,
    InvalidToken,
    NotAuthenticated,
    ResourceError,
    UnknownKey,
)
from bastion_resource.principal import Principal
from bastion_resource.resource import BastionResource

__all__ = [
    "BastionResource",
    "BastionUnavailable",
    "InsufficientScope",
    "InvalidToken",
    "NotAuthenticated",
    "Principal",
    "ResourceError",
    "UnknownKey",
]
