"""Todos: the demo resource. Owners only; ``todos:moderate`` may read and delete any.

It is a client of Bastion like any application: it declares its scopes
(:data:`bastion.services.todos.SCOPES`) and protects its routes with the
public ``requires`` dependency. ``BASTION_DEMO_TODOS=false`` leaves it out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from pydantic import TypeAdapter

from bastion.api.deps import DbSession, Pagination, RuntimeDep, requires
from bastion.api.params import ObjectId
from bastion.api.responses import errors
from bastion.api.schemas import Page, TodoIn, TodoOut, TodoPatch
from bastion.services import todos
from bastion.services.principals import Principal
from bastion.services.todos import TODOS_MODERATE, TODOS_READ, TODOS_WRITE

router = APIRouter(prefix="/todos", tags=["todos"])
Reader = Annotated[Principal, requires(TODOS_READ)]
Writer = Annotated[Principal, requires(TODOS_WRITE)]


_TODO_PAGE = TypeAdapter(Page[TodoOut])


@router.get("", response_model=Page[TodoOut], responses=errors(401, 403, 422, 429))
async def list_todos(principal: Reader, runtime: RuntimeDep, page: Pagination) -> Response:
    owner_id = principal.user.id

    async def render() -> bytes:
        async with runtime.read_engine.connect() as connection:
            rows, total = await todos.list_todos(
                connection, owner_id=owner_id, limit=page.limit, offset=page.offset
            )
        body = {"items": rows, "total": total, "limit": page.limit, "offset": page.offset}
        return _TODO_PAGE.dump_json(_TODO_PAGE.validate_python(body, from_attributes=True))

    rendered = await runtime.todo_pages.get(owner_id, (page.limit, page.offset), render)
    return Response(rendered, media_type="application/json")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TodoOut,
    responses=errors(400, 401, 403, 413, 422, 429),
)
async def create_todo(
    body: TodoIn, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    return await todos.create_todo(
        db,
        runtime.state,
        owner_id=principal.user.id,
        title=body.title,
        description=body.description,
        done=body.done,
    )


@router.get("/{todo_id}", response_model=TodoOut, responses=errors(401, 403, 404, 429))
async def read_todo(todo_id: ObjectId, principal: Reader, db: DbSession) -> object:
    return await todos.get_todo(
        db,
        todo_id=todo_id,
        viewer_id=principal.user.id,
        any_owner=TODOS_MODERATE in principal.scopes,
    )


@router.patch(
    "/{todo_id}",
    response_model=TodoOut,
    responses=errors(400, 401, 403, 404, 413, 422, 429),
)
async def update_todo(
    todo_id: ObjectId, body: TodoPatch, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    todo = await todos.get_todo(db, todo_id=todo_id, viewer_id=principal.user.id, any_owner=False)
    return await todos.update_todo(
        db, runtime.state, todo, body.model_dump(exclude_unset=True)
    )


@router.delete("/{todo_id}", status_code=204, responses=errors(401, 403, 404, 429))
async def delete_todo(
    todo_id: ObjectId, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> None:
    todo = await todos.get_todo(
        db,
        todo_id=todo_id,
        viewer_id=principal.user.id,
        any_owner=TODOS_MODERATE in principal.scopes,
    )
    await todos.delete_todo(db, runtime.state, todo)
