"""Roles, the scopes they grant, and scope-string parsing."""

from __future__ import annotations

from collections.abc import Iterable

ME = "me"
TODOS_READ = "todos:read"
TODOS_WRITE = "todos:write"
TODOS_MODERATE = "todos:moderate"
USERS_READ = "users:read"
USERS_WRITE = "users:write"
AUDIT_READ = "audit:read"

SCOPE_DESCRIPTIONS: dict[str, str] = {
    ME: "Read and change your own account",
    TODOS_READ: "Read your todos",
    TODOS_WRITE: "Create, change and delete your todos",
    TODOS_MODERATE: "Read and delete anyone's todos",
    USERS_READ: "Read any user's profile",
    USERS_WRITE: "Change, disable and delete users",
    AUDIT_READ: "Read the security audit trail",
}
ALL_SCOPES: frozenset[str] = frozenset(SCOPE_DESCRIPTIONS)

_USER = frozenset({ME, TODOS_READ, TODOS_WRITE})
_MODERATOR = _USER | {USERS_READ, TODOS_MODERATE}
_ADMIN = _MODERATOR | {USERS_WRITE, AUDIT_READ}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "user": _USER,
    "moderator": _MODERATOR,
    "admin": _ADMIN,
}
DEFAULT_ROLE = "user"


def scopes_for_roles(roles: Iterable[str]) -> frozenset[str]:
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_SCOPES.get(role, frozenset())
    return frozenset(granted)


def parse_scope(value: str | None) -> frozenset[str]:
    return frozenset(value.split()) if value else frozenset()


def format_scope(scopes: Iterable[str]) -> str:
    return " ".join(sorted(scopes))
