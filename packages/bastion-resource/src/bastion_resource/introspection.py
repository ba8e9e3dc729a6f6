"""Asking Bastion whether a token is still live (RFC 7662), with a short memory of the answers."""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote_plus

from bastion_resource.cache import BoundedCache
from bastion_resource.errors import BastionUnavailable, InvalidToken
from bastion_resource.principal import Principal
from bastion_resource.transport import BastionClient, TransportError

logger = logging.getLogger("bastion_resource")


@dataclasses.dataclass(frozen=True, slots=True)
class IntrospectionCredential:
    """How the kit authenticates to the introspection endpoint: an API key, or a client."""

    api_key: str | None = dataclasses.field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together")

    @property
    def configured(self) -> bool:
        return self.api_key is not None or self.client_id is not None

    def headers(self) -> dict[str, str]:
        if self.client_id is not None and self.client_secret is not None:
            # RFC 6749 section 2.3.1: both are form-encoded before Basic encoding.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if self.api_key is not None:
            return {"X-API-Key": self.api_key}
        return {}


class Introspector:
    """Introspects a locally verified token and caps its scopes by what Bastion says now.

    Answers are remembered for ``cache_ttl`` seconds, inactive ones too. After a
    failure Bastion is left alone for ``cooldown`` seconds, during which routes that
    need introspection answer "unavailable" at once rather than wait on a timeout.
    """

    def __init__(
        self,
        *,
        client: BastionClient,
        endpoint: Callable[[], Awaitable[str]],
        credential: IntrospectionCredential,
        issuer: str,
        audience: str,
        cache_ttl: float,
        cooldown: float,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._credential = credential
        self._issuer = issuer
        self._audience = audience
        self._cache_ttl = cache_ttl
        self._cooldown = cooldown
        self._clock = clock
        self._cache: BoundedCache[str, tuple[float, frozenset[str] | None]] = BoundedCache(
            cache_size
        )
        self._down_until = 0.0
        self.calls = 0  # introspection requests sent, for operators and tests

    async def check(self, token: str, principal: Principal) -> Principal:
        """``principal`` with the scopes Bastion grants it now; InvalidToken if no longer active."""
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            scopes = cached[1]
        else:
            scopes = await self._ask(token, principal)
            self._cache.put(token, (now + self._cache_ttl, scopes))
        if scopes is None:
            raise InvalidToken("token is not active")
        return dataclasses.replace(principal, scopes=principal.scopes & scopes)

    async def _ask(self, token: str, principal: Principal) -> frozenset[str] | None:
        if self._clock() < self._down_until:
            raise self._unavailable()
        self.calls += 1
        try:
            status, answer = await self._client.post_form(
                await self._endpoint(), {"token": token}, headers=self._credential.headers()
            )
        except (TransportError, ValueError) as exc:  # ValueError: discovery was not usable
            logger.warning("token introspection failed: %s", exc)
            raise self._went_down() from exc
        if status != 200:
            logger.warning("token introspection answered %s (is the credential valid?)", status)
            raise self._went_down()
        return self._live_scopes(answer, principal)

    def _live_scopes(self, answer: dict[str, Any], principal: Principal) -> frozenset[str] | None:
        """The token's current scopes if Bastion calls it active for us, else None."""
        if answer.get("active") is not True:
            return None
        scope, exp, aud = answer.get("scope", ""), answer.get("exp"), answer.get("aud")
        if (
            answer.get("sub") != principal.subject
            or not _names(aud, self._audience)
            or answer.get("iss", self._issuer) != self._issuer
            or not isinstance(scope, str)
            or (isinstance(exp, int) and exp <= time.time())
        ):
            return None
        return frozenset(scope.split())

    def _went_down(self) -> BastionUnavailable:
        self._down_until = self._clock() + self._cooldown
        return self._unavailable()

    def _unavailable(self) -> BastionUnavailable:
        retry_after = max(1, math.ceil(self._down_until - self._clock()))
        return BastionUnavailable("token introspection is unavailable", retry_after=retry_after)


def _names(aud: object, audience: str) -> bool:
    """Whether an introspection ``aud`` (absent, a string or a list) includes ``audience``."""
    return aud is None or aud == audience or (isinstance(aud, list) and audience in aud)
