"""Offset pagination: one page of a query and the total it would return."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession


async def paginate(
    db: AsyncSession, query: Select[Any], *, limit: int, offset: int
) -> tuple[list[Any], int]:
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = await db.scalar(counted)
    rows = await db.scalars(query.limit(limit).offset(offset))
    return list(rows), int(total or 0)
