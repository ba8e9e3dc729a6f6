"""Shared dependencies, as ``Annotated`` aliases: the runtime, the unit of work, the principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import (
    APIKeyHeader,
    HTTPBasic,
    OAuth2PasswordBearer,
    SecurityScopes,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.api.client_ip import client_ip
from bastion.db.engine import transaction
from bastion.errors import AuthenticationError, InsufficientScope
from bastion.runtime import Runtime
from bastion.scopes import BUILTIN_SCOPES
from bastion.services.principals import Principal
from bastion.services.token_grants import ClientInfo


class _BasicScheme(HTTPBasic):
    """HTTP Basic that reports malformed credentials in Bastion's own vocabulary."""

    def make_not_authenticated_error(self) -> Any:
        return AuthenticationError("malformed Basic credentials")


API_KEY_HEADER = "X-API-Key"
# Not dependencies of their own: ``authenticate`` reads these credentials, and the
# OpenAPI document describes them from these objects (``document_credential_schemes``).
api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, scheme_name="APIKey", auto_error=False, description="A personal API key (bst_...)."
)
basic_scheme = _BasicScheme(
    realm="bastion", scheme_name="HTTPBasic", auto_error=False, description="Username (or email) and password."
)


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a thread hop on every request.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def _unit_of_work(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request, committed before the response is sent."""
    async with transaction(runtime.sessionmaker) as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_unit_of_work, scope="function")]


def client_info(request: Request, runtime: Runtime) -> ClientInfo:
    return ClientInfo(
        ip=client_ip(request, runtime.settings.trusted_networks),
        user_agent=request.headers.get("user-agent"),
    )


async def get_client(request: Request, runtime: RuntimeDep) -> ClientInfo:
    return client_info(request, runtime)


Client = Annotated[ClientInfo, Depends(get_client)]


async def authenticate(request: Request, scopes: Sequence[str] = ()) -> Principal:
    """Resolve whichever credential came (bearer, API key, Basic), then demand ``scopes``."""
    runtime: Runtime = request.app.state.runtime  # not a dependency: the hot path of every route
    principals = runtime.principals
    headers = request.headers
    scheme, _, value = headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value:
        principal = await principals.from_bearer(value)
    elif api_key := headers.get(API_KEY_HEADER):
        principal = await principals.from_api_key(api_key)
    elif runtime.settings.api_key_query and (query_key := request.query_params.get("api_key")):
        principal = await principals.from_api_key(query_key)
    elif scheme == "basic" and runtime.settings.basic_auth:
        basic = await basic_scheme(request)
        if basic is None:  # "Basic" with no credentials after it
            raise basic_scheme.make_not_authenticated_error()
        client = client_info(request, runtime)
        principal = await principals.from_basic(basic.username, basic.password, client)
    else:
        raise AuthenticationError("not authenticated")
    for scope in scopes:
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
    return principal


class _Credentials(OAuth2PasswordBearer):
    """The one security dependency of every protected route: whichever credential came.

    FastAPI documents it as the OAuth2 scheme, with each route's scopes;
    ``bastion.api.docs.document_credential_schemes`` lists the API key (and
    Basic, when on) beside it. It reads all three credentials itself rather
    than depending on three scheme objects: FastAPI solves every dependency by
    a recursion of its solver, and those three were about a third of the CPU
    of ``GET /users/me``.
    """

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> Principal:
        return await authenticate(request, security_scopes.scopes)


credentials = _Credentials(
    tokenUrl="/auth/token",
    scheme_name="OAuth2",
    scopes=BUILTIN_SCOPES,  # the app's declared scopes are added by Bastion.document_scopes
    auto_error=False,
    description="OAuth2: a JWT access token from /auth/token.",
)


def requires(*scopes: str) -> Any:
    """``Annotated[Principal, requires("me")]``: authenticated, with these scopes."""
    return Security(credentials, scopes=list(scopes))


CurrentPrincipal = Annotated[Principal, requires()]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    offset: int


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(_page_params)]
