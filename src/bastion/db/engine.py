"""The async engine and session factory, built per app in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _configure_sqlite(engine: AsyncEngine, *, read_only: bool) -> None:
    """WAL, foreign keys and a busy timeout on every connection; then, by role:

    - the write engine has one connection, so writers in this process queue
      for it in order instead of polling SQLite's lock, and every transaction
      starts with ``BEGIN IMMEDIATE``: the write lock is taken up front
      (waiting on the busy timeout for other processes) instead of failing
      with "database is locked" when a reader later tries to write;
    - the read engine's connections are ``query_only`` and open no explicit
      transaction: each statement reads one consistent snapshot and never
      waits for a writer. With nothing to roll back, the engine skips the
      driver's ``rollback()`` when a connection closes (one round trip to
      aiosqlite's thread per read saved).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if not read_only:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Straight to aiosqlite: one round trip to its thread instead of three.
            connection.connection.dbapi_connection.run_async(
                lambda driver: driver.execute("BEGIN IMMEDIATE")
            )


def _sqlite_engine(url: str, *, echo: bool, read_only: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=5 if read_only else 1,
        max_overflow=0,
        pool_timeout=60,
        pool_reset_on_return=None if read_only else "rollback",
        # Only where no transaction is ever begun: the write engine's connections
        # also run in driver autocommit mode, but there SQLAlchemy issues BEGIN.
        skip_autocommit_rollback=read_only,
    )
    _configure_sqlite(engine, read_only=read_only)
    return engine


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """The engine for units of work (reads and writes)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo, read_only=False)
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)


def create_read_engine(url: str, engine: AsyncEngine, *, echo: bool = False) -> AsyncEngine:
    """An engine for queries that only read: its own pool on SQLite, ``engine`` elsewhere."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, echo=echo, read_only=True)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


AFTER_COMMIT = "bastion.after_commit"
BEFORE_COMMIT = "bastion.before_commit"


def before_commit(session: AsyncSession, write: Callable[[], Awaitable[None]]) -> None:
    """Run ``write`` inside the unit of work just before it commits (buffered rows)."""
    session.info.setdefault(BEFORE_COMMIT, []).append(write)


def on_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the unit of work has committed (cache invalidation)."""
    session.info.setdefault(AFTER_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    for write in session.info.pop(BEFORE_COMMIT, []):
        await write()
    try:
        await session.commit()
    except BaseException:
        # A COMMIT that failed (no disk, a lost connection) leaves the transaction in an
        # unknown state, and SQLite may keep it open: close the connection rather than
        # hand it to the next request, whose BEGIN would fail or whose COMMIT would
        # carry this one's writes.
        await session.invalidate()
        raise
    for callback in session.info.pop(AFTER_COMMIT, []):
        callback()


async def rollback(session: AsyncSession) -> None:
    session.info.clear()  # buffered writes and commit callbacks go with the transaction
    await session.rollback()


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error.

    An error that says ``keep_writes`` (a failed login whose audit event must
    stay recorded, a refresh-token reuse that revoked its session) commits
    what was written before it is passed on.
    """
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException as exc:
            if getattr(exc, "keep_writes", False):
                await commit(session)
            else:
                await rollback(session)
            raise
        else:
            await commit(session)
