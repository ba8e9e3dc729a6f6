"""Todos, the protected resource: owners see their own; moderators may read and delete any."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, RowMapping, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bastion.db.engine import on_commit
from bastion.db.models import Todo
from bastion.errors import NotFound
from bastion.services.access_model import ScopeDeclaration
from bastion.services.auth_state import AuthState

TODOS = "todos"  # the cache kind of rendered todo pages
TODOS_READ = "todos:read"
TODOS_WRITE = "todos:write"
TODOS_MODERATE = "todos:moderate"
# Declared at startup (when the demo is on), like any application declares its own.
SCOPES = (
    ScopeDeclaration(TODOS_READ, "Read your todos", roles=("user", "moderator", "admin")),
    ScopeDeclaration(
        TODOS_WRITE, "Create, change and delete your todos", roles=("user", "moderator", "admin")
    ),
    ScopeDeclaration(TODOS_MODERATE, "Read and delete anyone's todos", roles=("moderator", "admin")),
)


def _page_query() -> Select[Any]:
    table = Todo.__table__
    return (
        select(table, func.count().over().label("total"))
        .where(table.c.owner_id == bindparam("owner_id"))
        .order_by(table.c.created_at.desc(), table.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


async def list_todos(
    connection: AsyncConnection, *, owner_id: str, limit: int, offset: int
) -> tuple[list[RowMapping], int]:
    """One page of the owner's todos, newest first, and their total, in one query.

    The hottest read of the API: one prepared Core statement on a read-only
    connection, the total counted by a window function instead of a second
    round trip.
    """
    params = {"owner_id": owner_id, "limit": limit, "offset": offset}
    rows = list((await connection.execute(_PAGE, params)).mappings())
    if rows:
        return rows, int(rows[0]["total"])
    if offset == 0:
        return [], 0
    table = Todo.__table__
    total = await connection.scalar(
        select(func.count()).select_from(table).where(table.c.owner_id == owner_id)
    )
    return [], int(total or 0)


_PAGE = _page_query()


def changed(db: AsyncSession, state: AuthState, owner_id: str) -> None:
    """The owner's todo list changed: cached pages go at commit, here and in peers."""
    on_commit(db, lambda: state.invalidate(TODOS, owner_id))


async def create_todo(
    db: AsyncSession,
    state: AuthState,
    *,
    owner_id: str,
    title: str,
    description: str | None,
    done: bool,
) -> Todo:
    todo = Todo(owner_id=owner_id, title=title, description=description, done=done)
    db.add(todo)
    await db.flush()
    changed(db, state, owner_id)
    return todo


async def get_todo(db: AsyncSession, *, todo_id: str, viewer_id: str, any_owner: bool) -> Todo:
    """The todo if ``viewer_id`` owns it (or ``any_owner``); otherwise it does not exist."""
    todo = await db.get(Todo, todo_id)
    if todo is None or (todo.owner_id != viewer_id and not any_owner):
        raise NotFound("todo not found")
    return todo


async def update_todo(
    db: AsyncSession, state: AuthState, todo: Todo, changes: dict[str, object]
) -> Todo:
    for field, value in changes.items():
        setattr(todo, field, value)
    await db.flush()
    await db.refresh(todo)
    changed(db, state, todo.owner_id)
    return todo


async def delete_todo(db: AsyncSession, state: AuthState, todo: Todo) -> None:
    await db.delete(todo)
    await db.flush()
    changed(db, state, todo.owner_id)
