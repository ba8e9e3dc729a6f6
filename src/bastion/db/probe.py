"""Readiness of the database: does it answer, and would it accept a write now?"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Below this much free space a SQLite database under write load fails within moments.
MIN_FREE_BYTES = 1 << 20


def _sqlite_file_refuses(database: str) -> bool:
    """The file or its directory is not writable, or their filesystem is (nearly) full."""
    path = Path(database)
    folder = path.parent
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return True
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES


async def accepts_writes(engine: AsyncEngine) -> bool:
    """Open a write transaction and roll it back; False when the database would refuse.

    On SQLite the write engine begins with ``BEGIN IMMEDIATE``, so this takes the
    write lock, and the file must have room to grow. On PostgreSQL the
    transaction must not be read-only (a standby, ``default_transaction_read_only``).
    A database that does not answer raises, as it would for any query.
    """
    sqlite = engine.url.get_backend_name() == "sqlite"
    database = engine.url.database
    if sqlite and database and database != ":memory:" and _sqlite_file_refuses(database):
        return False
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            if sqlite:
                return True
            setting = text("SELECT current_setting('transaction_read_only')")
            return bool(await connection.scalar(setting) == "off")
        finally:
            await transaction.rollback()
