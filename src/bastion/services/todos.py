"""Todos, the protected resource: owners see their own; moderators may read and delete any."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.db.models import Todo
from bastion.db.pagination import paginate
from bastion.errors import NotFound


async def list_todos(
    db: AsyncSession, *, owner_id: str, limit: int, offset: int
) -> tuple[list[Todo], int]:
    query = select(Todo).where(Todo.owner_id == owner_id).order_by(Todo.created_at.desc(), Todo.id)
    return await paginate(db, query, limit=limit, offset=offset)


async def create_todo(
    db: AsyncSession, *, owner_id: str, title: str, description: str | None, done: bool
) -> Todo:
    todo = Todo(owner_id=owner_id, title=title, description=description, done=done)
    db.add(todo)
    await db.flush()
    return todo


async def get_todo(db: AsyncSession, *, todo_id: str, viewer_id: str, any_owner: bool) -> Todo:
    """The todo if ``viewer_id`` owns it (or ``any_owner``); otherwise it does not exist."""
    todo = await db.get(Todo, todo_id)
    if todo is None or (todo.owner_id != viewer_id and not any_owner):
        raise NotFound("todo not found")
    return todo


async def delete_todo(db: AsyncSession, todo: Todo) -> None:
    await db.delete(todo)
    await db.flush()
