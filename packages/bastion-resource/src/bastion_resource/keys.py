"""Bastion's public signing keys: discovered, cached, refetched on an unknown ``kid`` (throttled)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from bastion_resource.transport import BastionClient, TransportError

logger = logging.getLogger("bastion_resource")

# Asymmetric algorithms only, each bound to the key type that can carry it:
# an HMAC "key" in a JWKS, or a key without ``alg``, is never used.
ALGORITHMS_BY_KEY_TYPE: Mapping[str, frozenset[str]] = {
    "EC": frozenset({"ES256", "ES384", "ES512"}),
    "OKP": frozenset({"EdDSA"}),
    "RSA": frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}),
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: Any  # a cryptography public key, as PyJWT's PyJWK builds it


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What discovery tells the kit: where the keys are, where to introspect."""

    jwks_uri: str
    introspection_endpoint: str


def parse_jwks(document: Mapping[str, Any]) -> dict[str, VerificationKey]:
    """The usable public signing keys of a JWKS, by ``kid``; anything doubtful is left out."""
    members = document.get("keys")
    if not isinstance(members, list):
        raise TypeError("a JWKS has a list of keys")
    keys: dict[str, VerificationKey] = {}
    for jwk in members:
        key = _verification_key(jwk)
        if key is not None:
            keys[key.kid] = key
    return keys


def _verification_key(jwk: object) -> VerificationKey | None:
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS.intersection(jwk):
        return None
    kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
    if not (isinstance(kid, str) and kid and isinstance(alg, str) and isinstance(kty, str)):
        return None
    if alg not in ALGORITHMS_BY_KEY_TYPE.get(kty, ()) or jwk.get("use", "sig") != "sig":
        return None
    try:
        parsed = jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    return VerificationKey(kid=kid, algorithm=alg, key=parsed.key)


class KeyStore:
    """The keys of one issuer, with at most one fetch in flight and one per ``min_interval``.

    A request meeting an unknown ``kid`` may trigger a refetch, but only when the
    last one started ``min_interval`` seconds ago or more; concurrent misses share
    that one fetch, so a storm of forged ``kid``s costs Bastion one request per
    interval. Keys older than ``max_age`` are refreshed in the background while the
    cached ones keep serving. A failed fetch keeps the keys already known.
    """

    def __init__(
        self,
        *,
        issuer: str,
        client: BastionClient,
        min_interval: float,
        max_age: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._client = client
        self._min_interval = min_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, VerificationKey] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._endpoints: Endpoints | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0  # JWKS fetches attempted, for operators and tests

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def get(self, kid: str) -> VerificationKey | None:
        """The cached key named ``kid``; schedules a background refresh when the keys are old."""
        if (
            self._max_age is not None
            and self._loaded_at is not None
            and self._clock() - self._loaded_at >= self._max_age
        ):
            self._schedule_refetch()
        return self._keys.get(kid)

    async def resolve(self, kid: str) -> VerificationKey | None:
        """The key named ``kid``, refetching the key set once if allowed; None if unknown."""
        key = self._keys.get(kid)
        if key is None:
            task = self._schedule_refetch()
            if task is not None:
                await asyncio.shield(task)
            key = self._keys.get(kid)
        return key

    def seconds_until_refetch(self) -> int:
        """When a fetch may be tried again, in whole seconds (at least 1): a ``Retry-After``."""
        waited = 0.0 if self._last_attempt is None else self._clock() - self._last_attempt
        return max(1, math.ceil(self._min_interval - waited))

    async def endpoints(self) -> Endpoints:
        """Bastion's discovery document, fetched once and then kept."""
        if self._endpoints is None:
            self._endpoints = await self._discover()
        return self._endpoints

    async def refresh(self) -> None:
        """Fetch the key set now (a lifespan warms the cache with it); failures are logged."""
        task = self._schedule_refetch(force=True)
        if task is not None:
            await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel a fetch still in flight."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None and inflight.get_loop() is asyncio.get_running_loop():
            inflight.cancel()
            await asyncio.gather(inflight, return_exceptions=True)

    def _schedule_refetch(self, *, force: bool = False) -> asyncio.Task[None] | None:
        inflight = self._inflight
        if inflight is not None and inflight.get_loop() is asyncio.get_running_loop():
            return inflight
        now = self._clock()
        if (
            not force
            and self._last_attempt is not None
            and now - self._last_attempt < self._min_interval
        ):
            return None
        self._last_attempt = now
        task = asyncio.get_running_loop().create_task(self._fetch())
        self._inflight = task
        task.add_done_callback(self._fetched)
        return task

    def _fetched(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            endpoints = await self.endpoints()
            keys = parse_jwks(await self._client.get_json(endpoints.jwks_uri))
        except (TransportError, ValueError, TypeError) as exc:
            self._endpoints = None  # discover again next time: Bastion may have moved
            logger.warning("could not fetch Bastion's signing keys: %s", exc)
            return
        if not keys:
            logger.warning("Bastion's key set holds no usable signing key; keeping the old one")
            return
        self._keys = keys
        self._loaded_at = self._clock()

    async def _discover(self) -> Endpoints:
        url = f"{self._issuer.rstrip('/')}/.well-known/openid-configuration"
        document = await self._client.get_json(url)
        if document.get("issuer") != self._issuer:
            raise ValueError(f"discovery at {url} names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not _is_url(jwks_uri):
            raise ValueError(f"discovery at {url} has no usable jwks_uri")
        introspection = document.get("introspection_endpoint")
        if not _is_url(introspection):
            introspection = f"{self._issuer.rstrip('/')}/auth/introspect"
        return Endpoints(jwks_uri=str(jwks_uri), introspection_endpoint=str(introspection))


def _is_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))
