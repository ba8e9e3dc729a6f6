"""The built-in scopes and roles Bastion's own endpoints rely on, and scope-string parsing.

Roles and scopes are data (see :mod:`bastion.services.access_catalog`): these
names are the ones the migrations seed and Bastion's routes demand.
"""

from __future__ import annotations

from collections.abc import Iterable

ME = "me"
USERS_READ = "users:read"
USERS_WRITE = "users:write"
AUDIT_READ = "audit:read"
TOKENS_INTROSPECT = "tokens:introspect"
OPENID = "openid"

BUILTIN_SCOPES: dict[str, str] = {
    ME: "Read and change your own account",
    USERS_READ: "Read any user's profile",
    USERS_WRITE: "Change, disable and delete users; manage roles, scopes and APIs",
    AUDIT_READ: "Read the security audit trail",
    TOKENS_INTROSPECT: "Ask whether a token is live (RFC 7662)",
}
BUILTIN_ROLES = ("user", "moderator", "admin")
DEFAULT_ROLE = "user"


def parse_scope(value: str | None) -> frozenset[str]:
    return frozenset(value.split()) if value else frozenset()


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
