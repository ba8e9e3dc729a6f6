"""Changing the authorization model: scopes, roles and resource servers (no HTTP here).

Every change is audited and invalidates the :mod:`access_catalog` snapshot at
commit, in this process and (through the state fan-out) in every other.
Built-in scopes and roles are seeded by the migrations and cannot be deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bastion.db.engine import on_commit
from bastion.db.models import ResourceServer, ResourceServerScope, Role, RoleScope, Scope, UserRole
from bastion.errors import Conflict, NotFound, PolicyViolation
from bastion.scopes import USERS_WRITE
from bastion.services import audit
from bastion.services.access_catalog import CATALOG
from bastion.services.auth_state import AuthState

# RFC 6749 §3.3 allows more, but these survive URLs, headers and shells unquoted.
SCOPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
ADMIN_ROLE = "admin"
RESOURCE_IDENTIFIER_RULE = "an absolute URI without a fragment, e.g. https://orders.example.com"


def is_resource_identifier(value: str) -> bool:
    """RFC 8707 section 2: a resource is an absolute URI without a fragment."""
    scheme, sep, rest = value.partition(":")
    valid_scheme = scheme[:1].isalpha() and all(ch.isalnum() or ch in "+.-" for ch in scheme)
    return bool(sep and rest and valid_scheme) and value.isprintable() and not (
        set(value) & {"#", " "}
    )


@dataclass(frozen=True, slots=True)
class ScopeDeclaration:
    """A scope an application needs, and the roles that get it when it is first created."""

    name: str
    description: str
    roles: tuple[str, ...] = ()


def _changed(db: AsyncSession, state: AuthState) -> None:
    on_commit(db, lambda: state.invalidate(CATALOG, ""))


def check_scope_name(name: str) -> str:
    if not SCOPE_NAME.fullmatch(name):
        raise PolicyViolation(
            f"invalid scope name {name[:64]!r}: 1-64 of A-Z a-z 0-9 _ . : / -, starting alphanumeric"
        )
    return name


def check_role_name(name: str) -> str:
    if not ROLE_NAME.fullmatch(name):
        raise PolicyViolation(
            f"invalid role name {name[:32]!r}: 1-32 of a-z 0-9 _ . -, starting alphanumeric"
        )
    return name


async def _require_known(
    db: AsyncSession, column: InstrumentedAttribute[str], names: Iterable[str], what: str
) -> list[str]:
    """``names``, sorted and unique, or :class:`PolicyViolation` naming the unknown ones."""
    wanted = sorted(set(names))
    known = set(await db.scalars(select(column).where(column.in_(wanted))))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise PolicyViolation(f"unknown {what}(s): {', '.join(unknown)}")
    return wanted


async def require_scopes(db: AsyncSession, names: Iterable[str]) -> list[str]:
    return await _require_known(db, Scope.name, names, "scope")


async def require_roles(db: AsyncSession, names: Iterable[str]) -> list[str]:
    return await _require_known(db, Role.name, names, "role")


async def _insert_unique(db: AsyncSession, row: object, what: str) -> None:
    db.add(row)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} already exists") from exc


# Scopes


async def list_scopes(db: AsyncSession) -> Sequence[Scope]:
    return (await db.scalars(select(Scope).order_by(Scope.name))).all()


async def create_scope(
    db: AsyncSession, state: AuthState, *, name: str, description: str, ip: str | None,
    actor_id: str | None,
) -> Scope:
    scope = Scope(name=check_scope_name(name), description=description, builtin=False)
    await _insert_unique(db, scope, f"scope {name!r}")
    audit.record(db, "scope_created", user_id=actor_id, ip=ip, detail={"scope": name})
    _changed(db, state)
    return scope


async def declare_scopes(
    db: AsyncSession, state: AuthState, declarations: Iterable[ScopeDeclaration]
) -> list[str]:
    """Create the scopes an application declares, if missing; returns those created.

    A scope created here is granted to its declared roles once, at creation:
    an administrator who later takes it from a role is not overruled at the
    next start. Safe to run from several processes at once.
    """
    created: list[str] = []
    for declaration in declarations:
        check_scope_name(declaration.name)
        if await db.get(Scope, declaration.name) is not None:
            continue
        try:
            async with db.begin_nested():
                db.add(Scope(name=declaration.name, description=declaration.description))
                await db.flush()
                roles = await require_roles(db, declaration.roles)
                for role in roles:
                    db.add(RoleScope(role_name=role, scope_name=declaration.name))
                await db.flush()
        except IntegrityError:  # another process declared it first
            continue
        created.append(declaration.name)
    if created:
        _changed(db, state)
    return created


# Roles


async def list_roles(db: AsyncSession) -> Sequence[Role]:
    return (await db.scalars(select(Role).order_by(Role.name))).all()


async def get_role(db: AsyncSession, name: str) -> Role:
    role = await db.get(Role, name)
    if role is None:
        raise NotFound("role not found")
    return role


async def create_role(
    db: AsyncSession, state: AuthState, *, name: str, description: str, scopes: Iterable[str],
    ip: str | None, actor_id: str | None,
) -> Role:
    granted = await require_scopes(db, scopes)
    role = Role(
        name=check_role_name(name),
        description=description,
        builtin=False,
        scope_links=[RoleScope(scope_name=scope) for scope in granted],
    )
    await _insert_unique(db, role, f"role {name!r}")
    audit.record(
        db, "role_created", user_id=actor_id, ip=ip, detail={"role": name, "scopes": granted}
    )
    _changed(db, state)
    return role


async def update_role(
    db: AsyncSession, state: AuthState, *, role: Role, description: str | None = None,
    scopes: Iterable[str] | None = None, ip: str | None, actor_id: str | None,
) -> Role:
    detail: dict[str, object] = {"role": role.name}
    if description is not None and description != role.description:
        role.description = description
        detail["description"] = description
    if scopes is not None:
        wanted = await require_scopes(db, scopes)
        if role.name == ADMIN_ROLE and USERS_WRITE not in wanted:
            raise Conflict(f"the admin role keeps {USERS_WRITE}: without it nobody could undo this")
        before = role.scopes
        if wanted != before:
            role.scope_links = [
                *(link for link in role.scope_links if link.scope_name in wanted),
                *(RoleScope(scope_name=name) for name in wanted if name not in before),
            ]
            detail.update({"from": before, "to": wanted})
    if len(detail) > 1:
        await db.flush()
        audit.record(db, "role_updated", user_id=actor_id, ip=ip, detail=detail)
        _changed(db, state)
    return role


async def grant_scope(
    db: AsyncSession, state: AuthState, *, role: Role, scope: str, ip: str | None,
    actor_id: str | None,
) -> Role:
    return await update_role(
        db, state, role=role, scopes=[*role.scopes, scope], ip=ip, actor_id=actor_id
    )


async def revoke_scope(
    db: AsyncSession, state: AuthState, *, role: Role, scope: str, ip: str | None,
    actor_id: str | None,
) -> Role:
    if scope not in role.scopes:
        await require_scopes(db, [scope])
        return role
    remaining = [name for name in role.scopes if name != scope]
    return await update_role(db, state, role=role, scopes=remaining, ip=ip, actor_id=actor_id)


async def delete_role(
    db: AsyncSession, state: AuthState, *, role: Role, ip: str | None, actor_id: str | None
) -> None:
    if role.builtin:
        raise Conflict(f"the built-in role {role.name!r} cannot be deleted")
    holders = await db.scalar(
        select(func.count()).select_from(UserRole).where(UserRole.role_name == role.name)
    )
    if holders:
        raise Conflict(f"role {role.name!r} is held by {holders} user(s); take it from them first")
    await db.delete(role)
    await db.flush()
    audit.record(db, "role_deleted", user_id=actor_id, ip=ip, detail={"role": role.name})
    _changed(db, state)


# Resource servers


async def list_resource_servers(db: AsyncSession) -> Sequence[ResourceServer]:
    return (await db.scalars(select(ResourceServer).order_by(ResourceServer.identifier))).all()


async def get_resource_server(db: AsyncSession, server_id: str) -> ResourceServer:
    server = await db.get(ResourceServer, server_id)
    if server is None:
        raise NotFound("resource server not found")
    return server


async def create_resource_server(
    db: AsyncSession, state: AuthState, *, identifier: str, name: str, scopes: Iterable[str],
    ip: str | None, actor_id: str | None,
) -> ResourceServer:
    if not is_resource_identifier(identifier) or len(identifier) > 255:
        raise PolicyViolation(f"invalid resource identifier: {RESOURCE_IDENTIFIER_RULE}")
    granted = await require_scopes(db, scopes)
    server = ResourceServer(
        identifier=identifier,
        name=name,
        scope_links=[ResourceServerScope(scope_name=scope) for scope in granted],
    )
    await _insert_unique(db, server, f"resource server {identifier!r}")
    audit.record(
        db, "resource_server_created", user_id=actor_id, ip=ip,
        detail={"identifier": identifier, "scopes": granted},
    )
    _changed(db, state)
    return server


async def delete_resource_server(
    db: AsyncSession, state: AuthState, *, server: ResourceServer, ip: str | None,
    actor_id: str | None,
) -> None:
    await db.execute(delete(ResourceServer).where(ResourceServer.id == server.id))
    audit.record(
        db, "resource_server_deleted", user_id=actor_id, ip=ip,
        detail={"identifier": server.identifier},
    )
    _changed(db, state)


