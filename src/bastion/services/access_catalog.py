"""The authorization model as data: scopes, what each role grants, and the registered APIs.

Every request needs "which scopes do these roles grant", so the whole model
is read in three small queries and kept as one immutable :class:`Catalog`
snapshot for ``state_cache_ttl`` seconds. A change (over the admin API or
the CLI) invalidates it at commit, here and, through the state fan-out, in
every other process; without Redis another process sees it within the TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.models import ResourceServer, ResourceServerScope, RoleScope, Scope
from bastion.db.models import Role as RoleRow
from bastion.scopes import OPENID
from bastion.services.auth_state import TtlCache

CATALOG = "catalog"  # the cache kind, for invalidation and fan-out
UNGATED_SCOPES = frozenset({OPENID})


@dataclass(frozen=True)
class Catalog:
    """One consistent view of the scopes, roles and resource servers."""

    scopes: Mapping[str, str]  # name -> description
    roles: Mapping[str, frozenset[str]]  # role -> the scopes it grants
    resources: Mapping[str, frozenset[str]]  # resource server identifier -> its scopes
    _granted: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict, repr=False)
    # Derived once per snapshot: read on every request.
    audiences: frozenset[str] = field(init=False)
    own_scopes: frozenset[str] = field(init=False)  # scopes no registered API owns
    ungated: frozenset[str] = field(init=False)  # scopes any user may consent to (openid)

    def __post_init__(self) -> None:
        owned = frozenset().union(*self.resources.values())
        object.__setattr__(self, "audiences", frozenset(self.resources))
        object.__setattr__(self, "own_scopes", frozenset(self.scopes) - owned)
        object.__setattr__(self, "ungated", UNGATED_SCOPES & self.scopes.keys())

    def permitted(self, roles: tuple[str, ...]) -> frozenset[str]:
        """What a token of a user with ``roles`` may carry: their scopes and the ungated ones.

        Unlike :meth:`scopes_for` (a login's default), ``openid`` is in it: it is never
        granted unless asked for, and then to anyone.
        """
        key = ("", *roles)  # no role is named "": its own slot in the same memo
        permitted = self._granted.get(key)
        if permitted is None:
            permitted = self._granted[key] = self.scopes_for(roles) | self.ungated
        return permitted

    def scopes_for(self, roles: tuple[str, ...]) -> frozenset[str]:
        """The union of what ``roles`` grant (unknown roles grant nothing)."""
        granted = self._granted.get(roles)
        if granted is None:
            granted = frozenset().union(*(self.roles.get(role, ()) for role in roles))
            self._granted[roles] = granted
        return granted

    def unknown_scopes(self, names: Iterable[str]) -> list[str]:
        return sorted(set(names) - self.scopes.keys())

    def allowed_for(self, audience: str | None) -> frozenset[str]:
        """The scopes a token for ``audience`` may carry.

        A registered API's tokens carry its scopes only; Bastion's own tokens
        (``audience`` None) carry every scope that no registered API owns.
        """
        if audience is not None:
            return self.resources.get(audience, frozenset())
        return self.own_scopes


async def load_catalog(db: AsyncSession) -> Catalog:
    scopes = {row.name: row.description for row in await db.scalars(select(Scope))}
    roles: dict[str, set[str]] = {name: set() for name in await db.scalars(select(RoleRow.name))}
    for role_name, scope_name in await db.execute(select(RoleScope.role_name, RoleScope.scope_name)):
        roles[role_name].add(scope_name)
    resources: dict[str, set[str]] = {}
    linked = select(ResourceServer.identifier, ResourceServerScope.scope_name).outerjoin(
        ResourceServerScope, ResourceServerScope.resource_server_id == ResourceServer.id
    )
    for identifier, scope_name in await db.execute(linked):
        names = resources.setdefault(identifier, set())
        if scope_name is not None:
            names.add(scope_name)
    return Catalog(
        scopes=scopes,
        roles={name: frozenset(granted) for name, granted in roles.items()},
        resources={name: frozenset(granted) for name, granted in resources.items()},
    )


class AccessCatalog:
    """The current :class:`Catalog`, reloaded when invalidated or older than ``ttl``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, ttl: float) -> None:
        self._sessionmaker = sessionmaker
        self._cache: TtlCache[Catalog] = TtlCache(ttl)

    async def current(self) -> Catalog:
        catalog = await self._cache.get(CATALOG, self._load)
        assert catalog is not None
        return catalog

    async def _load(self, _key: str) -> Catalog:
        async with self._sessionmaker() as db:
            return await load_catalog(db)

    # The Invalidatable protocol of AuthState: any change drops the whole snapshot.
    def invalidate(self, key: str) -> None:
        self._cache.clear()

    def clear(self) -> None:
        self._cache.clear()
