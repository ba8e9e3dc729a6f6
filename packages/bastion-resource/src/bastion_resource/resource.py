"""``BastionResource``: one protected API's configuration, key and token caches, and guards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Security

from bastion_resource.challenges import http_error
from bastion_resource.errors import InsufficientScope, NotAuthenticated, ResourceError
from bastion_resource.introspection import IntrospectionCredential, Introspector
from bastion_resource.keys import KeyStore
from bastion_resource.openapi import BearerGuard, Flow, declare_scopes, oauth2_model
from bastion_resource.principal import Principal
from bastion_resource.tokens import LEEWAY_SECONDS, TokenVerifier
from bastion_resource.transport import BastionClient

PASSWORD_FLOW: tuple[Flow, ...] = ("password",)


class BastionResource:
    """Protects the routes of one API (one ``audience``) with access tokens from ``issuer``.

    ``Annotated[Principal, auth.requires("orders:read")]`` on a route demands a
    valid token for this audience with that scope; ``introspect=True`` also asks
    Bastion that the token is still live (logout, revocation, a lost role).
    Nothing is fetched before the first request (or :meth:`lifespan`).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        scopes: Mapping[str, str] | None = None,
        key_refetch_interval: float = 10.0,
        key_max_age: float | None = 300.0,
        introspection_cache_ttl: float = 5.0,
        introspection_cooldown: float = 2.0,
        timeout: float = 2.0,
        leeway: int = LEEWAY_SECONDS,
        token_cache_size: int = 20_000,
        openapi_flows: Collection[Flow] = PASSWORD_FLOW,
        scheme_name: str = "Bastion",
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        _check_config(
            issuer=issuer,
            audience=audience,
            positive={"timeout": timeout},
            non_negative={
                "key_refetch_interval": key_refetch_interval,
                "introspection_cache_ttl": introspection_cache_ttl,
                "introspection_cooldown": introspection_cooldown,
                "leeway": leeway,
                "key_max_age": key_max_age or 0,
            },
        )
        self.issuer = issuer
        self.audience = audience
        self._client = BastionClient(timeout=timeout, client=http_client)
        self._keys = KeyStore(
            issuer=issuer,
            client=self._client,
            min_interval=key_refetch_interval,
            max_age=key_max_age,
        )
        self._verifier = TokenVerifier(
            keys=self._keys,
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            cache_size=token_cache_size,
        )
        self._credential = IntrospectionCredential(
            api_key=api_key, client_id=client_id, client_secret=client_secret
        )
        self._introspector = Introspector(
            client=self._client,
            endpoint=self._introspection_endpoint,
            credential=self._credential,
            issuer=issuer,
            audience=audience,
            cache_ttl=introspection_cache_ttl,
            cooldown=introspection_cooldown,
        )
        model = oauth2_model(
            issuer=issuer, audience=audience, flows=openapi_flows, scopes=dict(scopes or {})
        )
        self._model = model
        self._local = BearerGuard(
            model=model, scheme_name=scheme_name, check=self._guard, introspect=False
        )
        self._live = BearerGuard(
            model=model, scheme_name=scheme_name, check=self._guard, introspect=True
        )

    def __repr__(self) -> str:
        return f"BastionResource(issuer={self.issuer!r}, audience={self.audience!r})"

    @property
    def keys(self) -> KeyStore:
        return self._keys

    @property
    def introspector(self) -> Introspector:
        return self._introspector

    def requires(self, *scopes: str, introspect: bool = False) -> Any:
        """A ``Security`` dependency yielding the :class:`Principal`, demanding ``scopes``.

        With ``introspect=True`` the token is also introspected at Bastion (answers
        kept ``introspection_cache_ttl`` seconds), which needs a credential.
        """
        if introspect and not self._credential.configured:
            raise ValueError("introspect=True needs api_key (or client_id and client_secret)")
        declare_scopes(self._model, {scope: scope for scope in scopes})
        return Security(self._live if introspect else self._local, scopes=list(scopes))

    async def verify(self, token: str) -> Principal:
        """The principal of ``token`` if it is a valid access token for this audience."""
        return await self._verifier.verify(token)

    async def authenticate(
        self, authorization: str | None, scopes: Sequence[str] = (), *, introspect: bool = False
    ) -> Principal:
        """Check an ``Authorization`` header value; raises :class:`ResourceError` subclasses."""
        token = _bearer_token(authorization)
        principal = self._verifier.remembered(token) or await self._verifier.verify(token)
        if introspect:
            principal = await self._introspector.check(token, principal)
        missing = tuple(scope for scope in scopes if scope not in principal.scopes)
        if missing:
            raise InsufficientScope(missing)
        return principal

    async def _guard(
        self, authorization: str | None, scopes: list[str], introspect: bool
    ) -> Principal:
        try:
            return await self.authenticate(authorization, scopes, introspect=introspect)
        except ResourceError as exc:
            raise http_error(exc) from None

    async def _introspection_endpoint(self) -> str:
        return (await self._keys.endpoints()).introspection_endpoint

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """``FastAPI(lifespan=auth.lifespan)``: fetch the keys at startup, close at shutdown.

        Startup does not fail when Bastion is down: keys are fetched on first use.
        """
        await self._keys.refresh()
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop a key fetch in flight; close the HTTP client the kit made (not one passed in)."""
        await self._keys.aclose()
        await self._client.aclose()


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise NotAuthenticated()
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated()
    return token


def _check_config(
    *,
    issuer: str,
    audience: str,
    positive: Mapping[str, float],
    non_negative: Mapping[str, float],
) -> None:
    if not issuer.startswith(("https://", "http://")) or any(c in issuer for c in "?#"):
        raise ValueError("issuer is Bastion's absolute http(s) URL, without query or fragment")
    if not audience:
        raise ValueError("audience is the identifier this API is registered under at Bastion")
    for name, value in positive.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive")
    for name, value in non_negative.items():
        if not value >= 0:
            raise ValueError(f"{name} must not be negative")
