"""Hypothesis properties of the validation layer: whatever a client sends, never a 5xx.

API.md, "Conventions": never a 500 for any input a client can send; request bodies that fail
validation are a 422 (400 ``invalid_request`` on the OAuth endpoints); unknown fields in a
JSON body are a 422; errors carry ``{"detail": ...}``. Each test draws requests from
Hypothesis strategies and sends them, as a client would, to one app (the conftest ``api``
fixture: one app, one database, one logged-in admin per test function and backend):

- every JSON endpoint, any JSON value (nested ``None``/bools/ints/floats/text with control
  characters, lists, objects with random keys and the endpoint's real keys);
- the OAuth form endpoints, arbitrary form fields;
- bytes that are not JSON at all, as the body of every JSON endpoint: a 400 or 422;
- arbitrary ids in the path of every operation that takes one (a 404), and arbitrary
  ``limit``, ``offset``, ``q`` (and other) query parameters on every list (200 or 422);
- arbitrary ``Authorization`` (Basic, Bearer) and ``X-API-Key`` values (401, or 429).

Inputs known to have broken the app are pinned with ``@example`` so that every run tries
them: NUL characters in ids, query parameters, form fields and Basic usernames, which
PostgreSQL (unlike SQLite) refuses in text values.
"""

from __future__ import annotations

import base64
import json
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bastion.api.schemas import (
    AccountDeletion,
    AdminUserPatch,
    ApiKeyIn,
    PasswordChange,
    ProfilePatch,
    RegisterIn,
    TodoIn,
    TodoPatch,
)
from bastion.scopes import BUILTIN_ROLES, BUILTIN_SCOPES
from bastion.services.todos import SCOPES as TODO_SCOPES
from conftest import Account, Api

KNOWN_SCOPES = {*BUILTIN_SCOPES, *(scope.name for scope in TODO_SCOPES)}
PROPERTY = settings(
    deadline=None,
    # One app per test function is the point: examples share it (and its database).
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
    print_blob=True,
)


def examples(n: int) -> settings:
    return settings(PROPERTY, max_examples=n)


# --- strategies -------------------------------------------------------------------------

TRICKY_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[31m",
    "\u202e",
    "\ufeff",
    "\u0085",
    "\u2028",
    "\r\n",
    "admin",
    "me",
    "todos:write",
    "users:write audit:read",
    "' OR 1=1 --",
    "%_\\",
    "x" * 5000,
    "é" * 300,
    "😀" * 100,
]
texts = st.one_of(st.text(max_size=60), st.sampled_from(TRICKY_TEXT))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and infinities included: Python's json module sends them
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(texts, children, max_size=4),
    ),
    max_leaves=12,
)
# Values that get a field past its type check, so that examples also reach the handlers.
PLAUSIBLE = {
    "username": st.from_regex(r"\A[A-Za-z0-9_.-]{3,32}\Z"),
    "email": st.emails(),
    "scopes": st.lists(st.sampled_from(sorted(KNOWN_SCOPES)) | texts, max_size=4),
    "roles": st.lists(st.sampled_from(BUILTIN_ROLES) | texts, max_size=3),
    "expires_in_days": st.integers(min_value=-5, max_value=4000),
    "is_active": st.booleans(),
    "done": st.booleans(),
}


def bodies(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Any JSON value; often an object with some of ``model``'s keys, sometimes more."""
    keys = sorted(model.model_fields)
    field = {key: st.one_of(PLAUSIBLE.get(key, texts), texts, json_values) for key in keys}
    real = st.fixed_dictionaries({}, optional=field)
    extra = st.dictionaries(st.sampled_from(keys) | texts, json_values, max_size=3)
    mixed = st.builds(lambda a, b: {**a, **b}, real, extra)
    return st.one_of(json_values, real, mixed)


def encoded(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=True).encode()


# --- the app under test -----------------------------------------------------------------


@dataclass
class World:
    api: Api
    admin: Account
    todo_id: str
    victim_id: str

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.admin.headers, **kwargs.pop("headers", {})}
        return await self.api.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture
async def world(api: Api) -> World:
    admin = await api.account("admin")
    todo = await api.client.post("/todos", json={"title": "a todo"}, headers=admin.headers)
    assert todo.status_code == 201, todo.text
    victim = await api.account()
    return World(api=api, admin=admin, todo_id=todo.json()["id"], victim_id=victim.id)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # ``{todo}`` and ``{victim}`` are filled in from the world
    model: type[BaseModel]
    anonymous: bool = False

    def url(self, world: World) -> str:
        return self.path.format(todo=world.todo_id, victim=world.victim_id)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


JSON_ENDPOINTS = [
    Endpoint("POST", "/auth/register", RegisterIn, anonymous=True),
    Endpoint("PATCH", "/users/me", ProfilePatch),
    Endpoint("POST", "/users/me/password", PasswordChange),
    Endpoint("DELETE", "/users/me", AccountDeletion),
    Endpoint("POST", "/users/me/api-keys", ApiKeyIn),
    Endpoint("POST", "/todos", TodoIn),
    Endpoint("PATCH", "/todos/{todo}", TodoPatch),
    Endpoint("PATCH", "/admin/users/{victim}", AdminUserPatch),
]
FORM_ENDPOINTS = ["/auth/token", "/auth/revoke"]
OAUTH_FIELDS = [
    "grant_type",
    "username",
    "password",
    "scope",
    "refresh_token",
    "token",
    "token_type_hint",
    "client_id",
]
SECRET_FIELDS = {"password", "current_password", "new_password"}


async def send_json(
    world: World, endpoint: Endpoint, content: bytes, **headers: str
) -> httpx.Response:
    headers = {"Content-Type": "application/json", **headers}
    url = endpoint.url(world)
    if endpoint.anonymous:
        return await world.api.client.request(
            endpoint.method, url, content=content, headers=headers
        )
    return await world.send(endpoint.method, url, content=content, headers=headers)


def assert_error_body(response: httpx.Response) -> None:
    """A 4xx carries JSON ``{"detail": ...}`` (FastAPI's convention, API.md)."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "detail" in response.json(), response.text


def secrets_in(body: Any) -> list[str]:
    """The password values of ``body`` that no response may contain (API.md: no secret is
    ever returned). Only those that cannot be there by chance: 8 characters or more, not
    made of letters and spaces alone (a word of an error message), not inside another
    field's name or value (a 422 names unknown fields, a 409 may name the username)."""
    if not isinstance(body, dict):
        return []
    others = json.dumps(
        {k: v for k, v in body.items() if k not in SECRET_FIELDS}, ensure_ascii=False
    )
    secrets = [body[key] for key in sorted(SECRET_FIELDS & set(body))]
    return [
        secret
        for secret in secrets
        if isinstance(secret, str)
        and len(secret) >= 8
        and secret.strip(string.ascii_letters + " ")
        and secret not in others
    ]


# --- JSON bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", JSON_ENDPOINTS, ids=str)
@examples(40)
@given(data=st.data())
async def test_any_json_body_is_answered_without_a_server_error(
    world: World, endpoint: Endpoint, data: st.DataObject
) -> None:
    body = data.draw(bodies(endpoint.model), label="body")
    ascii_only = data.draw(st.booleans(), label="ensure_ascii")
    response = await send_json(world, endpoint, encoded(body, ascii_only))
    assert response.status_code < 500, (endpoint, body, response.text)
    if response.status_code >= 400:
        assert_error_body(response)
    if isinstance(body, dict) and set(body) - set(endpoint.model.model_fields):
        # No mass assignment: an unknown field is refused, whatever else the body holds.
        assert response.status_code == 422, (endpoint, body, response.text)
    if response.status_code >= 300:
        for secret in secrets_in(body):
            assert json.dumps(secret, ensure_ascii=False)[1:-1] not in response.text, (
                endpoint,
                response.text,
            )


def not_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):  # bad syntax or encoding, too many digits, too deep
        return True
    return False


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"title": "a",}',
            b"{'title': 'a'}",
            b"\xff\xfe{\x00}\x00",
            b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark: not JSON (RFC 8259 section 8.1)
            b'{"title": "\xff"}',
            b"[" * 5000,
            b"[" * 5000 + b"]" * 5000,  # JSON, but deeper than Python's json module goes
            b"1" * 5000,
            b"NaN",
            b"undefined",
            b"title=a&done=true",
            b"--x\r\nContent-Disposition: form-data; name=title\r\n\r\na\r\n--x--\r\n",
        ]
    ),
).filter(not_json)


@examples(80)
@given(
    endpoint=st.sampled_from(JSON_ENDPOINTS),
    raw=raw_bodies,
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
)
async def test_a_body_that_is_not_json_is_a_client_error(
    world: World, endpoint: Endpoint, raw: bytes, content_type: str
) -> None:
    response = await send_json(world, endpoint, raw, **{"Content-Type": content_type})
    assert response.status_code in (400, 422), (endpoint, raw, content_type, response.text)
    assert_error_body(response)


# --- OAuth forms ------------------------------------------------------------------------

form_values = st.one_of(
    texts,
    st.sampled_from(["password", "refresh_token", "client_credentials", "authorization_code"]),
)
form_fields = st.dictionaries(
    st.sampled_from(OAUTH_FIELDS) | texts,
    form_values | st.lists(form_values, min_size=2, max_size=3),  # a list: a repeated field
    max_size=6,
)


@pytest.mark.parametrize("path", FORM_ENDPOINTS)
@examples(60)
@given(fields=form_fields, admin_as_username=st.booleans())
@example(fields={"username": "a\x00b", "password": "x"}, admin_as_username=False)
@example(fields={"grant_type": "refresh_token", "refresh_token": "a\x00"}, admin_as_username=False)
@example(fields={"token": "\x00", "token_type_hint": "\x00"}, admin_as_username=False)
async def test_any_form_is_answered_without_a_server_error(
    world: World, path: str, fields: dict[str, Any], admin_as_username: bool
) -> None:
    if admin_as_username:
        fields = {**fields, "username": world.admin.username}
    response = await world.api.client.post(path, data=fields)
    assert response.status_code < 500, (path, fields, response.text)
    if response.status_code >= 400:
        assert_error_body(response)
    if response.status_code in (400, 401):
        # RFC 6749 section 5.2 (API.md): OAuth errors carry ``error`` and a description.
        assert {"error", "error_description"} <= set(response.json()), response.text
    if response.status_code == 429:
        assert int(response.headers["retry-after"]) >= 1


@pytest.mark.parametrize("path", FORM_ENDPOINTS)
@examples(40)
@given(
    raw=raw_bodies,
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/json",
            "",
        ]
    ),
)
async def test_any_raw_form_body_is_answered_without_a_server_error(
    world: World, path: str, raw: bytes, content_type: str
) -> None:
    response = await world.api.client.post(
        path, content=raw, headers={"Content-Type": content_type}
    )
    assert response.status_code < 500, (path, raw, content_type, response.text)
    if response.status_code >= 400:
        assert_error_body(response)


# --- ids in paths -----------------------------------------------------------------------

ID_ROUTES = [
    ("GET", "/todos/{}"),
    ("PATCH", "/todos/{}"),
    ("DELETE", "/todos/{}"),
    ("GET", "/users/{}"),
    ("PATCH", "/admin/users/{}"),
    ("DELETE", "/admin/users/{}"),
    ("DELETE", "/admin/users/{}/sessions"),
    ("DELETE", "/auth/sessions/{}"),
    ("DELETE", "/users/me/api-keys/{}"),
]
BODIES = {("PATCH", "/todos/{}"): {"done": True}, ("PATCH", "/admin/users/{}"): {"is_active": True}}
ids = st.one_of(
    st.text(min_size=1, max_size=80),
    st.sampled_from(
        [
            "00000000-0000-0000-0000-000000000000",
            "0",
            "-1",
            "9" * 40,
            "\x00",
            "a\x00b",
            "%00",
            "%2F",
            "' OR '1'='1",
            "*",
            "null",
            "x" * 3000,
        ]
    ),
)


@examples(80)
@given(route=st.sampled_from(ID_ROUTES), object_id=ids)
@example(route=("GET", "/todos/{}"), object_id="\x00")
@example(route=("DELETE", "/admin/users/{}"), object_id="a\x00b")
async def test_any_id_in_a_path_is_answered_without_a_server_error(
    world: World, route: tuple[str, str], object_id: str
) -> None:
    method, template = route
    path = template.format(quote(object_id, safe=""))
    response = await world.send(method, path, json=BODIES.get(route))
    assert response.status_code < 500, (route, object_id, response.text)
    if response.status_code >= 400:
        assert_error_body(response)
    if "/" not in object_id and object_id.strip(".") and object_id != "me":
        # No such object: objects that do not exist (or are not yours) are a 404.
        assert response.status_code == 404, (route, object_id, response.text)


# --- query parameters -------------------------------------------------------------------

LISTS = ["/todos", "/admin/users", "/admin/audit", "/auth/sessions", "/users/me/api-keys"]
numbers = st.one_of(
    st.integers().map(str),
    st.sampled_from(["", " 5", "5 ", "+5", "05", "1e2", "0x10", "1_0", "5.0", "NaN", "٣", "١٠"]),
    texts,
)
queries = st.dictionaries(
    st.sampled_from(["limit", "offset", "q", "user_id", "event"]) | texts,
    st.one_of(numbers, texts, st.lists(numbers | texts, min_size=2, max_size=3)),
    max_size=5,
)


def plain_int(value: Any) -> int | None:
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return None


@examples(80)
@given(path=st.sampled_from(LISTS), params=queries)
@example(path="/admin/users", params={"q": "\x00"})
@example(path="/admin/audit", params={"user_id": "a\x00b", "event": "\x00"})
async def test_any_query_is_answered_without_a_server_error(
    world: World, path: str, params: dict[str, Any]
) -> None:
    response = await world.send("GET", path, params=params)
    assert response.status_code < 500, (path, params, response.text)
    assert response.status_code in (200, 422), (path, params, response.text)
    if response.status_code >= 400:
        assert_error_body(response)
        return
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}, page
    assert 1 <= page["limit"] <= 100 and len(page["items"]) <= page["limit"]
    assert page["offset"] >= 0 and page["total"] >= 0
    limit = plain_int(params.get("limit"))
    if limit is not None:
        assert 1 <= limit <= 100 and page["limit"] == limit, (params, page)


# --- credentials ------------------------------------------------------------------------

credential_texts = st.one_of(st.text(max_size=40), st.sampled_from(TRICKY_TEXT[:12]))


header_octets = st.binary(max_size=80).filter(lambda raw: not set(raw) & {0, 10, 13})


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


credentials = st.one_of(
    st.builds(lambda u, p: {"Authorization": basic(u, p)}, credential_texts, credential_texts),
    st.builds(
        lambda raw: {"Authorization": "Basic " + base64.b64encode(raw).decode()},
        st.binary(max_size=40),
    ),
    st.builds(lambda t: {"Authorization": f"Bearer {t}"}, st.text(string.printable.strip())),
    st.builds(lambda k: {"X-API-Key": k}, st.text(string.printable.strip(), max_size=80)),
    # Any octets a header value may hold on the wire (all but NUL, CR and LF).
    st.builds(lambda raw: {"Authorization": b"Bearer " + raw}, header_octets),
    st.builds(lambda raw: {"X-API-Key": raw}, header_octets),
)


@pytest.mark.parametrize("settings_overrides", [{"basic_auth": True}])  # Basic is checked too
@examples(30)
@given(headers=credentials)
@example(headers={"Authorization": basic("a\x00b", "a password")})
async def test_any_credential_is_refused_without_a_server_error(
    world: World, headers: dict[str, str | bytes]
) -> None:
    """Whatever a client puts in ``Authorization`` or ``X-API-Key``: 401 (or, once the
    failures from this address add up, 429), never a 5xx."""
    response = await world.api.client.get("/users/me", headers=headers)
    assert response.status_code in (401, 429), (headers, response.status_code, response.text)
    assert_error_body(response)
