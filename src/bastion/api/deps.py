"""Shared dependencies, as ``Annotated`` aliases: the runtime, the unit of work, the principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import (
    APIKeyHeader,
    HTTPBasic,
    HTTPBasicCredentials,
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


oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    scheme_name="OAuth2",
    scopes=BUILTIN_SCOPES,  # the app's declared scopes are added by create_app
    auto_error=False,
    description="OAuth2 password flow: a JWT access token from /auth/token.",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", scheme_name="APIKey", auto_error=False, description="A personal API key (bst_...)."
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


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
) -> Principal:
    """Resolve whichever credential came, then demand the route's scopes."""
    runtime: Runtime = request.app.state.runtime  # not a dependency: the hot path of every route
    principals = runtime.principals
    if bearer:
        principal = await principals.from_bearer(bearer)
    elif api_key:
        principal = await principals.from_api_key(api_key)
    elif runtime.settings.api_key_query and (query_key := request.query_params.get("api_key")):
        principal = await principals.from_api_key(query_key)
    elif basic is not None and runtime.settings.basic_auth:
        client = client_info(request, runtime)
        principal = await principals.from_basic(basic.username, basic.password, client)
    else:
        raise AuthenticationError("not authenticated")
    for scope in security_scopes.scopes:
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
    return principal


def requires(*scopes: str) -> Any:
    """``Annotated[Principal, requires("me")]``: authenticated, with these scopes."""
    return Security(authenticate, scopes=list(scopes))


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
