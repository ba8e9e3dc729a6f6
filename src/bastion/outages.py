"""Infrastructure failures: which dependency an exception says is down, logged at a bounded rate.

A database or Redis that does not answer, or refuses writes (disk full,
locked, read-only), is not a bug of the request: it becomes
:class:`~bastion.errors.ServiceUnavailable`, and a line per dependency every
:data:`LOG_INTERVAL` seconds says so instead of a traceback per request.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable

from limits.errors import StorageError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

logger = logging.getLogger(__name__)
LOG_INTERVAL = 10.0

# Exception types worth a look; :func:`failed_dependency` decides.
CANDIDATES: tuple[type[Exception], ...] = (
    DBAPIError,
    PoolTimeout,
    RedisError,
    StorageError,
    OSError,  # refused or reset connections, asyncio's TimeoutError, a full disk
)
# Bare OSErrors of a server out of reach or a disk that takes no more; a missing file
# or a permission error is a bug or a deployment mistake, not an outage.
_UNREACHABLE = (ConnectionError, TimeoutError, socket.gaierror)
_ERRNO_UNAVAILABLE = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENETUNREACH,
     errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}
)
# SQLite primary result codes of a database that cannot do the work now: BUSY, LOCKED,
# NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL. Others (a syntax error...) are bugs.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 10, 13, 14, 15})
# SQLSTATE classes: connection exception, insufficient resources (disk full, too many
# connections), operator intervention (shutdown), system error; and a read-only transaction.
_SQLSTATE_UNAVAILABLE = ("08", "53", "57", "58", "25006")


def _database_refuses(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlite_errorcode", None)  # set by the sqlite3 driver
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_UNAVAILABLE
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str) and state.startswith(_SQLSTATE_UNAVAILABLE):
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def failed_dependency(exc: BaseException) -> str | None:
    """``"database"`` or ``"redis"`` when ``exc`` says that one is unavailable; else None."""
    if isinstance(exc, RedisError | StorageError):
        return "redis"
    if isinstance(exc, DBAPIError):
        return "database" if _database_refuses(exc) else None
    # Raised bare, not wrapped by SQLAlchemy: the pool's timeout, a refused connection,
    # asyncio's TimeoutError. (asyncpg's own errors arrive as DBAPIError; redis-py wraps
    # its socket errors in RedisError.)
    if isinstance(exc, OSError):
        unavailable = isinstance(exc, _UNREACHABLE) or exc.errno in _ERRNO_UNAVAILABLE
        return "database" if unavailable else None
    return "database" if isinstance(exc, PoolTimeout) else None


def describe(exc: BaseException) -> str:
    """The failure's type and first line: never SQLAlchemy's text, which quotes the SQL and
    its parameters."""
    root: BaseException = exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        root = exc.orig
    while root.__cause__ is not None:  # a driver's adapter wraps the driver's own error
        root = root.__cause__
    lines = str(root).strip().splitlines()
    return f"{type(root).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")


class OutageLog:
    """At most one warning per dependency per ``interval`` seconds, counting those left out."""

    def __init__(
        self, *, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def report(self, dependency: str, exc: BaseException) -> None:
        now = self._clock()
        last = self._last.get(dependency)
        if last is not None and now - last < self._interval:
            self._suppressed[dependency] += 1
            return
        self._last[dependency] = now
        suppressed = self._suppressed.pop(dependency, 0)
        logger.warning(
            "%s unavailable, answering 503 (%s)%s",
            dependency,
            describe(exc),
            f"; {suppressed} more since the last line" if suppressed else "",
            extra={"dependency": dependency, "suppressed": suppressed},
        )
