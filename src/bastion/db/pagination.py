"""Offset pagination: one page of a query and the total it would return."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def paginate(
    db: AsyncSession, query: Select[tuple[T]], *, limit: int, offset: int
) -> tuple[list[T], int]:
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = await db.scalar(counted)
    rows = await db.scalars(query.limit(limit).offset(offset))
    return list(rows), int(total or 0)
