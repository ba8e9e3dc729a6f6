"""Todos, the protected resource: CRUD, listing, object-level access, validation, scopes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from conftest import Account, Api

TODO_FIELDS = {"id", "title", "description", "done", "owner_id", "created_at", "updated_at"}
MISSING_ID = "00000000-0000-0000-0000-000000000000"


async def create(api: Api, owner: Account, **body: Any) -> dict[str, Any]:
    response = await api.client.post(
        "/todos", json={"title": "a todo", **body}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    todo: dict[str, Any] = response.json()
    return todo


async def send(api: Api, method: str, path: str, who: Account, **kwargs: Any) -> httpx.Response:
    return await api.client.request(method, path, headers=who.headers, **kwargs)


async def test_create_read_update_delete(api: Api) -> None:
    alice = await api.account()
    created = await api.client.post(
        "/todos", json={"title": "buy milk", "description": "two litres"}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    todo = created.json()
    assert set(todo) == TODO_FIELDS
    assert todo["title"] == "buy milk" and todo["description"] == "two litres"
    assert todo["done"] is False and todo["owner_id"] == alice.id
    created_at = datetime.fromisoformat(todo["created_at"])
    assert created_at.utcoffset() == timedelta(0)  # ISO 8601, UTC

    read = await send(api, "GET", f"/todos/{todo['id']}", alice)
    assert read.status_code == 200 and read.json() == todo

    patched = await send(api, "PATCH", f"/todos/{todo['id']}", alice, json={"done": True})
    assert patched.status_code == 200, patched.text
    assert patched.json()["done"] is True
    assert patched.json()["title"] == "buy milk" and patched.json()["description"] == "two litres"
    updated_at = datetime.fromisoformat(patched.json()["updated_at"])
    assert updated_at > datetime.fromisoformat(todo["updated_at"])
    assert updated_at.utcoffset() == timedelta(0)
    assert patched.json()["created_at"] == todo["created_at"]

    renamed = await send(
        api,
        "PATCH",
        f"/todos/{todo['id']}",
        alice,
        json={"title": "buy oat milk", "description": None},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["title"] == "buy oat milk" and renamed.json()["description"] is None
    assert renamed.json()["done"] is True
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).json() == renamed.json()

    deleted = await send(api, "DELETE", f"/todos/{todo['id']}", alice)
    assert deleted.status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        again = await send(api, method, f"/todos/{todo['id']}", alice, json={"done": False})
        assert again.status_code == 404, method
    listed = await send(api, "GET", "/todos", alice)
    assert listed.json()["total"] == 0 and listed.json()["items"] == []


async def test_create_with_done_true(api: Api) -> None:
    alice = await api.account()
    todo = await create(api, alice, title="already done", done=True)
    assert todo["done"] is True and todo["description"] is None


async def test_list_shape_and_paging(api: Api) -> None:
    alice = await api.account()
    ids = {(await create(api, alice, title=f"todo {i}"))["id"] for i in range(3)}

    page = await send(api, "GET", "/todos", alice)
    assert page.status_code == 200
    body = page.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    assert (body["total"], body["limit"], body["offset"]) == (3, 50, 0)
    assert {item["id"] for item in body["items"]} == ids
    assert all(set(item) == TODO_FIELDS for item in body["items"])

    first = (await send(api, "GET", "/todos?limit=2", alice)).json()
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (3, 2, 0, 2)
    rest = (await send(api, "GET", "/todos?limit=2&offset=2", alice)).json()
    assert (rest["total"], rest["limit"], rest["offset"], len(rest["items"])) == (3, 2, 2, 1)
    assert {item["id"] for item in first["items"] + rest["items"]} == ids
    beyond = (await send(api, "GET", "/todos?offset=10", alice)).json()
    assert beyond["items"] == [] and beyond["total"] == 3

    assert (await send(api, "GET", "/todos?limit=100", alice)).status_code == 200
    for query in ("limit=101", "limit=0", "limit=-1", "offset=-1", "limit=abc"):
        response = await send(api, "GET", f"/todos?{query}", alice)
        assert response.status_code == 422, query


async def test_another_users_todo_does_not_exist_for_you(api: Api) -> None:
    alice = await api.account()
    bob = await api.account()
    todo = await create(api, alice, title="alice's secret")
    bobs_own = await create(api, bob, title="bob's")

    outcomes = {}
    for method in ("GET", "PATCH", "DELETE"):
        theirs = await send(api, method, f"/todos/{todo['id']}", bob, json={"title": "mine now"})
        missing = await send(api, method, f"/todos/{MISSING_ID}", bob, json={"title": "x"})
        # Indistinguishable from a todo that never was.
        outcomes[method] = (theirs.status_code, theirs.json() == missing.json())
        assert "alice's secret" not in theirs.text
    assert outcomes == dict.fromkeys(("GET", "PATCH", "DELETE"), (404, True))

    # Alice's todo is untouched, and each list holds only its owner's todos.
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).json() == todo
    for who, own in ((alice, todo), (bob, bobs_own)):
        page = (await send(api, "GET", "/todos", who)).json()
        assert page["total"] == 1
        assert [item["id"] for item in page["items"]] == [own["id"]]


async def test_moderator_may_read_and_delete_anyones_todo_but_not_change_it(api: Api) -> None:
    alice = await api.account()
    moderator = await api.account("moderator")
    todo = await create(api, alice, title="flagged")

    read = await send(api, "GET", f"/todos/{todo['id']}", moderator)
    assert read.status_code == 200 and read.json() == todo
    # A moderator's list is still their own.
    assert (await send(api, "GET", "/todos", moderator)).json()["total"] == 0

    patched = await send(api, "PATCH", f"/todos/{todo['id']}", moderator, json={"title": "edited"})
    assert patched.status_code == 404
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).json()["title"] == "flagged"

    deleted = await send(api, "DELETE", f"/todos/{todo['id']}", moderator)
    assert deleted.status_code == 204
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).status_code == 404


async def test_moderator_scope_is_needed_to_see_others_todos(api: Api) -> None:
    """A moderator whose token lacks ``todos:moderate`` is an ordinary reader."""
    alice = await api.account()
    moderator = await api.account("moderator", scope="me todos:read todos:write")
    assert moderator.scope == "me todos:read todos:write"
    todo = await create(api, alice)
    assert (await send(api, "GET", f"/todos/{todo['id']}", moderator)).status_code == 404
    assert (await send(api, "DELETE", f"/todos/{todo['id']}", moderator)).status_code == 404
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).status_code == 200


INVALID_BODIES: dict[str, dict[str, Any]] = {
    "no title": {"description": "x"},
    "empty title": {"title": ""},
    "title 201 chars": {"title": "t" * 201},
    "title null": {"title": None},
    "title not a string": {"title": 42},
    "title with NUL": {"title": "nul\x00title"},
    "title with newline": {"title": "two\nlines"},
    "description 2001 chars": {"title": "ok", "description": "d" * 2001},
    "description with NUL": {"title": "ok", "description": "bad\x00text"},
    "description with ESC": {"title": "ok", "description": "bad\x1btext"},
    "done null": {"title": "ok", "done": None},
    "done not a boolean": {"title": "ok", "done": "maybe"},
    "unknown field owner_id": {"title": "ok", "owner_id": MISSING_ID},
    "unknown field id": {"title": "ok", "id": MISSING_ID},
}
INVALID_PATCHES: dict[str, dict[str, Any]] = {
    "empty title": {"title": ""},
    "title 201 chars": {"title": "t" * 201},
    "title null": {"title": None},
    "title with NUL": {"title": "nul\x00title"},
    "description 2001 chars": {"description": "d" * 2001},
    "description with NUL": {"description": "bad\x00text"},
    "done null": {"done": None},
    "unknown field owner_id": {"owner_id": MISSING_ID},
    "unknown field created_at": {"created_at": "2000-01-01T00:00:00Z"},
}


async def test_create_validation(api: Api) -> None:
    alice = await api.account()
    statuses = {
        case: (await send(api, "POST", "/todos", alice, json=body)).status_code
        for case, body in INVALID_BODIES.items()
    }
    assert statuses == dict.fromkeys(INVALID_BODIES, 422)
    assert (await send(api, "GET", "/todos", alice)).json()["total"] == 0

    longest = await create(
        api, alice, title="t" * 200, description="line one\nline\ttwo\r\n" + "d" * 1981
    )
    assert len(longest["title"]) == 200 and len(longest["description"]) == 2000


async def test_update_validation(api: Api) -> None:
    alice = await api.account()
    todo = await create(api, alice, title="original", description="kept")
    statuses = {
        case: (await send(api, "PATCH", f"/todos/{todo['id']}", alice, json=body)).status_code
        for case, body in INVALID_PATCHES.items()
    }
    assert statuses == dict.fromkeys(INVALID_PATCHES, 422)
    assert (await send(api, "GET", f"/todos/{todo['id']}", alice)).json() == todo

    edge = await send(
        api,
        "PATCH",
        f"/todos/{todo['id']}",
        alice,
        json={"title": "t" * 200, "description": "d" * 2000},
    )
    assert edge.status_code == 200, edge.text
    assert edge.json()["title"] == "t" * 200 and edge.json()["owner_id"] == alice.id


async def test_read_only_token_cannot_write(api: Api) -> None:
    alice = await api.account()
    todo = await create(api, alice, title="written with a full token")
    reader = await api.relogin(alice, scope="todos:read")
    assert reader.scope == "todos:read"
    challenge = 'Bearer error="insufficient_scope", scope="todos:write"'

    listed = await send(api, "GET", "/todos", reader)
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert (await send(api, "GET", f"/todos/{todo['id']}", reader)).status_code == 200

    for method, path, body in (
        ("POST", "/todos", {"title": "nope"}),
        ("PATCH", f"/todos/{todo['id']}", {"done": True}),
        ("DELETE", f"/todos/{todo['id']}", None),
    ):
        response = await send(api, method, path, reader, json=body)
        assert response.status_code == 403, (method, response.text)
        assert response.headers["www-authenticate"] == challenge
    after = (await send(api, "GET", "/todos", reader)).json()
    assert after["total"] == 1 and after["items"][0]["done"] is False


async def test_token_without_todo_scopes_cannot_read(api: Api) -> None:
    alice = await api.account(scope="me")
    response = await send(api, "GET", "/todos", alice)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="todos:read"'
    )


async def test_todos_need_credentials(api: Api) -> None:
    response = await api.client.get("/todos")
    assert response.status_code == 401
    assert "Bearer" in response.headers.get_list("www-authenticate")
    bad = await api.client.get("/todos", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_cached_list_follows_every_change(api: Api) -> None:
    """Pages are cached per process; every write, the owner's or a moderator's, drops them."""
    owner = await api.account()
    moderator = await api.account("moderator")

    async def titles() -> list[str]:
        response = await api.client.get("/todos", params={"limit": 20}, headers=owner.headers)
        return [item["title"] for item in response.json()["items"]]

    assert await titles() == []
    created = await api.client.post("/todos", json={"title": "one"}, headers=owner.headers)
    assert await titles() == ["one"]
    todo_id = created.json()["id"]
    await api.client.patch(f"/todos/{todo_id}", json={"title": "uno"}, headers=owner.headers)
    assert await titles() == ["uno"]
    deleted = await api.client.delete(f"/todos/{todo_id}", headers=moderator.headers)
    assert deleted.status_code == 204
    assert await titles() == []
