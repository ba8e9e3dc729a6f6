"""Schemathesis over the app's whole OpenAPI document (SQLite only, to keep CI fast).

The app is built by the factory (``create_app(settings)``) against a fresh copy of the
migrated SQLite template and reached in-process over ASGI. The factory's own lifespan
builds the runtime, so the database engine lives in the event loop Schemathesis serves the
app from (the conftest ``runtime`` fixture lives in pytest-asyncio's loop instead).

Every protected operation is called with valid credentials of an admin (every scope), so
that generated requests get past authentication and exercise the operation itself:

- ``test_api_with_bearer``: every operation, ``Authorization: Bearer <access token>``, in
  Schemathesis's examples, coverage and fuzzing phases;
- ``test_api_with_api_key``: the todos, users and API-key operations, ``X-API-Key``;
- ``test_api_with_basic``: the todos and admin operations, ``Authorization: Basic``;
- ``test_api_on_existing_objects``: every operation with an id in its path, the id being
  that of an object made for the example (generated ids almost never exist, so the other
  tests mostly see 404 there, never the 200 body of such an operation).

Checks: ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance`` and ``ignored_auth`` (a protected operation that answered
2xx must refuse the same request without credentials, and with invalid ones of each
declared kind, with 401/403). Besides, a protected operation must never answer 401 to the
valid credential we send: that would mean the test exercises nothing but authentication.

Nothing is excluded. The operations that end the caller's sessions (``POST /auth/logout``,
``POST /auth/logout-all``) are called with a fresh login of a second admin for each example,
so that they cannot revoke the token every other example presents. ``DELETE /users/me`` and
``POST /users/me/password`` need the account's password, which generated data never has
(it is not a constant anywhere in the app), so they cannot delete or lock out the admin;
``test_account_operations_with_the_password`` calls each once with it, as an account of its
own. ``test_every_protected_operation_was_probed`` then checks that every protected
operation answered some request with a 2xx, so that ``ignored_auth`` did probe it.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import copy
import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pyotp
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from bastion.app import create_app
from bastion.config import Settings
from bastion.db.engine import transaction
from bastion.runtime import build_runtime
from bastion.scopes import BUILTIN_SCOPES
from bastion.services import users
from bastion.services.todos import SCOPES as TODO_SCOPES
from oauth_flow import consent_fields, login_fields, pkce

PASSWORD = "violet-Harbor-91-lantern"
ADMIN = "fuzzadmin"  # the principal of every example
ALL_SCOPES = sorted({*BUILTIN_SCOPES, *(scope.name for scope in TODO_SCOPES)})
LEAVER = "fuzzleaver"  # an admin whose sessions the logout operations end
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
SESSION_ENDING = {"POST /auth/logout", "POST /auth/logout-all"}
CALLBACK = "https://app.example/cb"
CREDENTIAL_HEADERS = {"authorization", "x-api-key"}
_names = itertools.count(1)

# Schemathesis parametrizes at collection, so the schema and the app it calls exist at
# import; the app touches its database only from its lifespan, at the first request, after
# the ``target`` fixture has put a fresh copy of the migrated template in place.
WORKDIR = Path(tempfile.mkdtemp(prefix="bastion-schemathesis-"))
atexit.register(shutil.rmtree, WORKDIR, True)
SETTINGS = Settings(
    database_url=f"sqlite+aiosqlite:///{WORKDIR / 'bastion.db'}",
    _env_file=None,
    # ``ignored_auth`` follows every accepted request with probes carrying invalid
    # credentials, Basic among them; with the default limits (5 per account and IP) those
    # probes would be answered 429 after a few examples instead of 401. The limits
    # themselves are tested in test_throttling.py.
    login_max_failures=1_000_000,
    ip_max_failures=1_000_000,
    basic_auth=True,  # test_api_with_basic and the Basic account operations use it
    register_max_per_ip=1_000_000,  # every example may sign up; the quota is in test_accounts
)
APP = create_app(SETTINGS)
OPENAPI = APP.openapi()


def load_schema(*, coverage: bool) -> Any:
    """The app's schema. ``coverage``: besides the examples and fuzzing phases, also run the
    coverage phase (boundary and negative values of every parameter, up to a few dozen
    cases per operation)."""
    config = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": coverage}}})
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI), config=config)
    # What ``schemathesis.openapi.from_asgi`` does after fetching the document, which it
    # would do at import, before the database exists.
    loaded.app = APP
    loaded.location = "/openapi.json"
    return loaded


# Every operation with a bearer token in every phase. The API-key and Basic runs cover a
# subset in the fuzzing phase only: each Basic request, and each ``ignored_auth`` probe with
# invalid Basic credentials, costs an Argon2 verification.
schema = load_schema(coverage=True)
subset_schema = load_schema(coverage=False)


def fuzz(max_examples: int) -> settings:
    # Health checks judge the generator (slow or heavily filtered data), not the app.
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )


class Target:
    """The running app and the admin's credentials, used through Schemathesis's ASGI client."""

    def __init__(self) -> None:
        self.token = self.login(ADMIN)
        self.api_key = self.call(
            "POST", "/users/me/api-keys", json={"name": "fuzz", "scopes": ALL_SCOPES}
        )["key"]

    @staticmethod
    def login(username: str) -> str:
        """A fresh access token (a new session) of ``username``."""
        with asgi.get_client(APP) as client:
            response = client.post(
                "/auth/token", data={"username": username, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        with asgi.get_client(APP) as client:
            response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    # Objects for ``test_api_on_existing_objects``, one per example.

    def new_todo(self) -> str:
        return str(self.call("POST", "/todos", json={"title": "fuzz target"})["id"])

    def new_user(self, name: str | None = None) -> str:
        name = name or f"fuzzvictim{next(_names)}"
        with asgi.get_client(APP) as client:
            response = client.post(
                "/auth/register",
                json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
            )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def new_session(self) -> str:
        """Another session of the admin (not the one of ``self.token``)."""
        token = self.login(ADMIN)
        sessions = self.call("GET", "/auth/sessions", token=token, params={"limit": 100})
        return next(str(s["id"]) for s in sessions["items"] if s["current"])

    def new_role(self) -> str:
        name = f"fuzzrole{next(_names)}"
        self.call("POST", "/admin/roles", json={"name": name, "description": "fuzz target"})
        return name

    def new_resource_server(self) -> str:
        body = {"identifier": f"https://fuzz{next(_names)}.example", "name": "fuzz target"}
        return str(self.call("POST", "/admin/resource-servers", json=body)["id"])

    def new_client(self) -> str:
        body = {"name": "fuzz target", "type": "confidential", "grant_types": ["client_credentials"]}
        return str(self.call("POST", "/admin/clients", json=body)["client_id"])

    def new_api_key(self) -> str:
        body = {"name": "fuzz target", "scopes": ["me"]}
        return str(self.call("POST", "/users/me/api-keys", json=body)["id"])

    def new_consent(self) -> str:
        """A third-party client the admin has allowed, at the hosted login's consent page."""
        body = {"name": "fuzz target", "type": "public", "redirect_uris": [CALLBACK],
                "grant_types": ["authorization_code"], "scopes": ["me"]}
        client_id = str(self.call("POST", "/admin/clients", json=body)["client_id"])
        _, challenge = pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": CALLBACK,
                  "scope": "me", "code_challenge": challenge, "code_challenge_method": "S256"}
        with asgi.get_client(APP) as browser:
            page = browser.get("/authorize", params=params)
            fields = login_fields(page.text, ADMIN, PASSWORD)
            consent = browser.post("/authorize", data=fields, allow_redirects=False)
            done = browser.post(
                "/authorize", data=consent_fields(consent.text), allow_redirects=False
            )
        assert done.status_code == 303 and "code=" in done.headers["location"], done.text
        return client_id


async def _create_accounts() -> None:
    runtime = await build_runtime(SETTINGS)
    try:
        async with transaction(runtime.sessionmaker) as db:
            for name in (ADMIN, LEAVER):
                await users.create_user(
                    db,
                    passwords=runtime.passwords,
                    username=name,
                    email=f"{name}@example.com",
                    password=PASSWORD,
                    roles=("admin",),
                )
    finally:
        await runtime.close()


@pytest.fixture(scope="module")
def target(sqlite_template: Path) -> Iterator[Target]:
    shutil.copyfile(sqlite_template, WORKDIR / "bastion.db")
    asyncio.run(_create_accounts())
    with asgi.get_client(APP) as client:
        assert client.get("/openapi.json").json() == OPENAPI
    yield Target()
    asgi.shutdown_lifespans()
    shutil.rmtree(WORKDIR, ignore_errors=True)


# (credential scheme, operation) pairs whose authentication ``ignored_auth`` has confirmed.
AUTH_CONFIRMED: set[tuple[str, str]] = set()


def _call(case: Any, credential: dict[str, str]) -> Any:
    """Send ``case`` with exactly one credential, ours, and run the checks on the answer.

    Schemathesis also generates values for the declared credential headers (an empty or
    random ``X-API-Key`` beside our bearer token, say). The app resolves one credential per
    request, so such a header is either ignored (and ``ignored_auth`` then reports our valid
    bearer's 2xx as "generated credentials accepted") or fails the request before the
    operation runs. Only the credential under test is sent.

    ``ignored_auth`` probes (three more requests, one an Argon2 verification) after each
    accepted example; as Schemathesis's own runner does, it runs until it has confirmed an
    operation once per credential scheme.
    """
    headers = case.headers
    if isinstance(headers, MutableMapping):
        for name in [name for name in headers if str(name).lower() in CREDENTIAL_HEADERS]:
            del headers[name]
    scheme = credential["Authorization"].split()[0] if "Authorization" in credential else "key"
    confirmation = (scheme, case.operation.label)
    checks = [c for c in CHECKS if c is not ignored_auth or confirmation not in AUTH_CONFIRMED]
    response = case.call_and_validate(headers=credential, checks=checks)
    declared = OPENAPI["paths"].get(case.operation.path, {}).get(case.method.lower(), {})
    if declared.get("security"):
        if response.status_code == 401:
            pytest.fail(
                f"{case.operation.label} refused the valid credential {scheme}: "
                f"{response.status_code} {response.text}"
            )
        if 200 <= response.status_code < 300:
            AUTH_CONFIRMED.add(confirmation)
    return response


@schema.parametrize()
@fuzz(15)
def test_api_with_bearer(case: Any, target: Target) -> None:
    token = target.login(LEAVER) if case.operation.label in SESSION_ENDING else target.token
    _call(case, {"Authorization": f"Bearer {token}"})


@subset_schema.include(tag=["todos", "api keys", "users"]).parametrize()
@fuzz(10)
def test_api_with_api_key(case: Any, target: Target) -> None:
    _call(case, {"X-API-Key": target.api_key})


@subset_schema.include(tag=["todos", "admin"]).parametrize()
@fuzz(8)
def test_api_with_basic(case: Any, target: Target) -> None:
    raw = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    _call(case, {"Authorization": f"Basic {raw}"})


# By path first: a client_id in /users/me/consents must be one the admin has allowed.
PATH_MAKERS: dict[str, Callable[[Target], str]] = {
    "/users/me/consents/{client_id}": Target.new_consent,
}
MAKERS: dict[str, Callable[[Target], str]] = {
    "todo_id": Target.new_todo,
    "user_id": Target.new_user,
    "session_id": Target.new_session,
    "key_id": Target.new_api_key,
    "name": Target.new_role,
    "server_id": Target.new_resource_server,
    "client_id": Target.new_client,
}


@subset_schema.include(path_regex=r"\{").parametrize()
@fuzz(8)
def test_api_on_existing_objects(case: Any, target: Target) -> None:
    (name,) = case.path_parameters
    maker = PATH_MAKERS.get(case.operation.path, MAKERS[name])
    case.path_parameters[name] = maker(target)
    _call(case, {"Authorization": f"Bearer {target.token}"})


@pytest.mark.parametrize("scheme", ["Bearer", "X-API-Key", "Basic"])
@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("DELETE /users/me", {"password": PASSWORD}),
        (
            "POST /users/me/password",
            {"current_password": PASSWORD, "new_password": "amber-Quarry-47-tundra"},
        ),
    ],
)
def test_account_operations_with_the_password(
    target: Target, scheme: str, label: str, body: dict[str, str]
) -> None:
    """The two operations generated data cannot get past (they want the account's password),
    each called once with it, as an account of its own, with every credential scheme."""
    name = f"fuzzowner{next(_names)}"
    target.new_user(name)
    if scheme == "Bearer":
        credential = {"Authorization": f"Bearer {target.login(name)}"}
    elif scheme == "X-API-Key":
        body_of_key = {"name": "owner", "scopes": ["me"]}
        token = target.login(name)
        key = target.call("POST", "/users/me/api-keys", token=token, json=body_of_key)["key"]
        credential = {"X-API-Key": key}
    else:
        raw = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
        credential = {"Authorization": f"Basic {raw}"}
    method, path = label.split(" ")
    case = subset_schema[path][method].Case(body=body, media_type="application/json")
    assert _call(case, credential).status_code == 204


def test_second_factor_operations_with_a_code(target: Target) -> None:
    """Generated data cannot guess a TOTP code: an account of its own enrols, confirms with a
    real code, then turns the factor off with its password (by bearer: Basic carries no code)."""
    name = f"fuzzowner{next(_names)}"
    target.new_user(name)
    token = target.login(name)
    secret = target.call("POST", "/users/me/mfa/totp", token=token)["secret"]
    credential = {"Authorization": f"Bearer {token}"}
    steps = [
        ("/users/me/mfa/totp/confirm", "POST", {"code": pyotp.TOTP(secret).now()}, 200),
        ("/users/me/mfa/totp", "DELETE", {"password": PASSWORD}, 204),
    ]
    for path, method, body, status in steps:
        case = subset_schema[path][method].Case(body=body, media_type="application/json")
        assert _call(case, credential).status_code == status


def test_every_protected_operation_was_probed(request: pytest.FixtureRequest) -> None:
    """``ignored_auth`` probes only after a 2xx: every protected operation must have had one."""
    ran = {getattr(item, "originalname", item.name) for item in request.session.items}
    needed = {
        "test_api_with_bearer",
        "test_api_on_existing_objects",
        "test_account_operations_with_the_password",
    }
    if not needed <= ran:
        pytest.skip("needs the whole module to run")
    protected = {
        f"{method.upper()} {path}"
        for path, methods in OPENAPI["paths"].items()
        for method, operation in methods.items()
        if operation.get("security")
    }
    confirmed = {label for _, label in AUTH_CONFIRMED}
    assert sorted(protected - confirmed) == []
