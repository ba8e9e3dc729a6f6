"""The in-process view of who may act: users, sessions and API keys, cached briefly.

Every authenticated request needs the user's roles and whether its session
or key still stands. Reading them from the database each time would cost a
round trip per request, so they are cached here for ``state_cache_ttl``
seconds. Changes made by this process invalidate the entries at commit; a
change made by another process is seen within the TTL (or at once when a
:class:`~bastion.services.state_events.StateEvents` bus relays it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.models import ApiKey, AuthSession, User
from bastion.scopes import parse_scope

T = TypeVar("T")
MAX_ENTRIES = 100_000


class UserFields(Protocol):
    """The columns of a user that a :class:`UserView` keeps."""

    @property
    def id(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def full_name(self) -> str | None: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def email_verified_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class UserView:
    id: str
    username: str
    email: str
    full_name: str | None
    roles: tuple[str, ...]
    is_active: bool
    created_at: datetime
    email_verified: bool = False

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls.build(user, user.roles)

    @classmethod
    def build(cls, fields: UserFields, roles: Iterable[str]) -> UserView:
        """A view of ``fields`` (a ``User`` or a row with its columns) holding ``roles``."""
        names = tuple(sorted(roles))
        return cls(
            id=fields.id,
            username=fields.username,
            email=fields.email,
            full_name=fields.full_name,
            roles=names,
            is_active=fields.is_active,
            created_at=fields.created_at,
            email_verified=fields.email_verified_at is not None,
        )


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str
    user_id: str
    revoked: bool
    expires_at: datetime

    def is_active(self, now: datetime) -> bool:
        return not self.revoked and self.expires_at > now


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: str
    user_id: str
    scopes: frozenset[str]
    revoked: bool
    expires_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


class Invalidatable(Protocol):
    def invalidate(self, key: str) -> None: ...

    def clear(self) -> None: ...


class TtlCache(Generic[T]):
    """Entries kept for ``ttl`` seconds, dropped at once by :meth:`invalidate`.

    A value loaded while an invalidation happened (a logout committing during
    the read) is returned but not kept: the generation guards that race.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, T | None]] = {}
        self._loading: dict[str, asyncio.Future[T | None]] = {}
        self._generation = 0

    def lookup(self, key: str) -> tuple[bool, T | None]:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < self._ttl:
            return True, entry[1]
        return False, None

    @property
    def generation(self) -> int:
        return self._generation

    def store(self, key: str, value: T | None, *, generation: int) -> None:
        if self._ttl <= 0 or generation != self._generation:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)

    async def get(self, key: str, load: Callable[[str], Awaitable[T | None]]) -> T | None:
        hit, value = self.lookup(key)
        if hit:
            return value
        # One load per key at a time: when an entry expires under load, the
        # requests that miss together wait for one query instead of each making one.
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        generation = self._generation
        task = asyncio.ensure_future(load(key))
        self._loading[key] = task
        try:
            value = await asyncio.shield(task)
        finally:
            if self._loading.get(key) is task:
                del self._loading[key]
        self.store(key, value, generation=generation)
        return value

    def invalidate(self, key: str) -> None:
        # A load already under way may predate the change: later callers start afresh.
        self._generation += 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._loading.clear()


class AuthState:
    """Cached lookups of users, sessions and API keys (by key hash)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, ttl: float) -> None:
        self._sessionmaker = sessionmaker
        self.ttl = ttl
        self._users: TtlCache[UserView] = TtlCache(ttl)
        self._sessions: TtlCache[SessionView] = TtlCache(ttl)
        self._api_keys: TtlCache[ApiKeyView] = TtlCache(ttl)
        self._caches: dict[str, Invalidatable] = {
            "user": self._users,
            "session": self._sessions,
            "api_key": self._api_keys,
        }
        self.listeners: list[Callable[[str, str], None]] = []

    def register(self, kind: str, cache: Invalidatable) -> None:
        """Put another per-process cache under the same invalidation and fan-out."""
        self._caches[kind] = cache

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._caches)

    async def user(self, user_id: str) -> UserView | None:
        return await self._users.get(user_id, self._load_user)

    async def session(self, session_id: str) -> SessionView | None:
        return await self._sessions.get(session_id, self._load_session)

    async def api_key(self, key_hash: str) -> ApiKeyView | None:
        return await self._api_keys.get(key_hash, self._load_api_key)

    def invalidate(self, kind: str, key: str, *, broadcast: bool = True) -> None:
        """Forget one entry of a cache (``user``, ``session``, ``api_key``, or registered).

        ``*`` forgets everything, everywhere.
        """
        if kind == "*":
            for cache in self._caches.values():
                cache.clear()
        else:
            self._caches[kind].invalidate(key)
        if broadcast:
            for listener in self.listeners:
                listener(kind, key)

    async def _load_user(self, user_id: str) -> UserView | None:
        async with self._sessionmaker() as db:
            user = await db.get(User, user_id)
            return UserView.of(user) if user is not None else None

    async def _load_session(self, session_id: str) -> SessionView | None:
        async with self._sessionmaker() as db:
            row = await db.get(AuthSession, session_id)
            if row is None:
                return None
            return SessionView(
                id=row.id,
                user_id=row.user_id,
                revoked=row.revoked_at is not None,
                expires_at=row.expires_at,
            )

    async def _load_api_key(self, key_hash: str) -> ApiKeyView | None:
        async with self._sessionmaker() as db:
            row = await db.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            if row is None:
                return None
            return ApiKeyView(
                id=row.id,
                user_id=row.user_id,
                scopes=parse_scope(row.scopes),
                revoked=row.revoked_at is not None,
                expires_at=row.expires_at,
            )

