"""The OAuth client registry: public and confidential clients, their secrets and redirect URIs.

A confidential client's secret is random (256 bits) and stored as an HMAC
(:class:`~bastion.security.opaque_tokens.TokenDigester`): a high-entropy
secret needs no slow hash, so client authentication costs no Argon2 run. A
rotation keeps the previous secret valid for a grace period. Redirect URIs are
compared as exact strings; only https, loopback http and private-use schemes
(native apps, RFC 8252) are registered, never with a fragment or a wildcard.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bastion.db.engine import on_commit
from bastion.db.models import OAuthClient, Scope, utcnow
from bastion.db.pagination import paginate
from bastion.errors import Conflict, InvalidClient, NotFound, PolicyViolation
from bastion.scopes import format_scope, parse_scope
from bastion.security.opaque_tokens import TokenDigester, generate
from bastion.services import audit
from bastion.services.access_model import require_scopes
from bastion.services.auth_state import AuthState, TtlCache

CLIENT = "client"  # the AuthState cache kind, for invalidation and fan-out
PUBLIC, CONFIDENTIAL = "public", "confidential"
AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS = (
    "authorization_code", "refresh_token", "client_credentials",
)
GRANT_TYPES = frozenset({AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS})
CLIENT_SECRET_PREFIX = "bcs_"
DOCS_CLIENT_ID = "bastion-docs"  # Swagger UI's Authorize, built in
MAX_URI_LENGTH = 2000
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
REDIRECT_URI_RULE = (
    "https, http on a loopback address, or a private-use scheme such as com.example.app:/cb; "
    "no fragment, no wildcard"
)


@dataclass(frozen=True, slots=True)
class ClientView:
    """What every request needs of a client, cached like users and sessions."""

    id: str
    name: str
    type: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str]
    first_party: bool
    is_active: bool
    secret_hash: str | None
    previous_secret_hash: str | None
    previous_secret_expires_at: datetime | None

    @classmethod
    def of(cls, row: OAuthClient) -> ClientView:
        return cls(
            id=row.id, name=row.name, type=row.type,
            redirect_uris=_lines(row.redirect_uris),
            post_logout_redirect_uris=_lines(row.post_logout_redirect_uris),
            grant_types=parse_scope(row.grant_types), scopes=parse_scope(row.scopes),
            first_party=row.first_party, is_active=row.is_active, secret_hash=row.secret_hash,
            previous_secret_hash=row.previous_secret_hash,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )

    @property
    def confidential(self) -> bool:
        return self.type == CONFIDENTIAL

    def secret_matches(self, digest: str, now: datetime) -> bool:
        """Whether ``digest`` is the current secret's, or the previous one's within its grace."""
        current = self.secret_hash is not None and hmac.compare_digest(digest, self.secret_hash)
        previous = (
            self.previous_secret_hash is not None
            and self.previous_secret_expires_at is not None
            and self.previous_secret_expires_at > now
            and hmac.compare_digest(digest, self.previous_secret_hash)
        )
        return current or previous


def _lines(value: str) -> tuple[str, ...]:
    return tuple(line for line in value.splitlines() if line)


def is_redirect_uri(uri: str) -> bool:
    """RFC 9700 section 2.1 and RFC 8252 section 7: an exact URI a client may be sent back to."""
    if not uri or len(uri) > MAX_URI_LENGTH or not uri.isprintable() or set(uri) & {" ", "*", "#"}:
        return False
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme == "http":
        return parts.hostname is not None and _is_loopback(parts.hostname)
    # A private-use scheme is a reverse domain name (com.example.app), never a web scheme.
    return "." in parts.scheme and bool(parts.path) and not parts.netloc


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_uris(uris: Iterable[str]) -> list[str]:
    checked = list(dict.fromkeys(uris))
    bad = [uri for uri in checked if not is_redirect_uri(uri)]
    if bad:
        raise PolicyViolation(f"invalid redirect URI {bad[0][:100]!r}: {REDIRECT_URI_RULE}")
    return checked


def _check_grants(kind: str, grant_types: Iterable[str], redirect_uris: Sequence[str]) -> list[str]:
    grants = sorted(set(grant_types))
    unknown = [grant for grant in grants if grant not in GRANT_TYPES]
    if unknown:
        raise PolicyViolation(f"unknown grant type(s): {', '.join(unknown)}")
    if not grants:
        raise PolicyViolation("a client needs at least one grant type")
    if kind == PUBLIC and CLIENT_CREDENTIALS in grants:
        raise PolicyViolation("a public client cannot use client_credentials: it has no secret")
    if REFRESH_TOKEN in grants and AUTHORIZATION_CODE not in grants:
        raise PolicyViolation("refresh_token comes with authorization_code")
    if AUTHORIZATION_CODE in grants and not redirect_uris:
        raise PolicyViolation("authorization_code needs at least one redirect URI")
    return grants


def _changed(db: AsyncSession, state: AuthState, client_id: str) -> None:
    on_commit(db, partial(state.invalidate, CLIENT, client_id))


class ClientRegistry:
    """Cached lookups of clients, and client authentication with a secret."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, digester: TokenDigester, ttl: float
    ) -> None:
        self._sessionmaker = sessionmaker
        self._digester = digester
        self._cache: TtlCache[ClientView] = TtlCache(ttl)

    async def get(self, client_id: str) -> ClientView | None:
        """The client, if it exists and is enabled."""
        if not client_id or len(client_id) > 64:
            return None
        client = await self._cache.get(client_id, self._load)
        return client if client is not None and client.is_active else None

    async def authenticate(self, client_id: str, secret: str | None) -> ClientView:
        """The client ``client_id`` names, proven by ``secret`` when it is confidential."""
        client = await self.get(client_id)
        if client is None:
            raise InvalidClient()
        if client.confidential:
            if not secret or len(secret) > 256:
                raise InvalidClient()
            if not client.secret_matches(self._digester.digest(secret), utcnow()):
                raise InvalidClient()
        elif secret:
            raise InvalidClient("a public client has no secret")
        return client

    async def _load(self, client_id: str) -> ClientView | None:
        async with self._sessionmaker() as db:
            row = await db.get(OAuthClient, client_id)
            return ClientView.of(row) if row is not None else None

    # The Invalidatable protocol of AuthState.
    def invalidate(self, key: str) -> None:
        self._cache.invalidate(key)

    def clear(self) -> None:
        self._cache.clear()


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What an administrator registers."""

    name: str
    type: str
    redirect_uris: Sequence[str]
    grant_types: Sequence[str]
    scopes: Sequence[str]
    first_party: bool = False
    post_logout_redirect_uris: Sequence[str] = ()


_BY_AGE = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)


async def list_clients(db: AsyncSession) -> Sequence[OAuthClient]:
    return (await db.scalars(_BY_AGE)).all()


async def page_of_clients(
    db: AsyncSession, *, limit: int, offset: int
) -> tuple[list[OAuthClient], int]:
    return await paginate(db, _BY_AGE, limit=limit, offset=offset)


async def get_client(db: AsyncSession, client_id: str) -> OAuthClient:
    client = await db.get(OAuthClient, client_id)
    if client is None:
        raise NotFound("client not found")
    return client


def _new_secret(digester: TokenDigester) -> tuple[str, str]:
    secret = generate(CLIENT_SECRET_PREFIX)
    return secret, digester.digest(secret)


async def create_client(
    db: AsyncSession, state: AuthState, *, digester: TokenDigester, spec: ClientSpec,
    ip: str | None, actor_id: str | None, client_id: str | None = None,
) -> tuple[OAuthClient, str | None]:
    """Register a client; a confidential one's secret is returned this once."""
    if spec.type not in (PUBLIC, CONFIDENTIAL):
        raise PolicyViolation("type must be public or confidential")
    redirect_uris = _check_uris(spec.redirect_uris)
    grants = _check_grants(spec.type, spec.grant_types, redirect_uris)
    secret, secret_hash = _new_secret(digester) if spec.type == CONFIDENTIAL else (None, None)
    client = OAuthClient(
        id=client_id or secrets.token_urlsafe(16),
        name=spec.name,
        type=spec.type,
        redirect_uris="\n".join(redirect_uris),
        post_logout_redirect_uris="\n".join(_check_uris(spec.post_logout_redirect_uris)),
        grant_types=" ".join(grants),
        scopes=format_scope(await require_scopes(db, spec.scopes)),
        first_party=spec.first_party,
        is_active=True,
        secret_hash=secret_hash,
    )
    db.add(client)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict("a client with this id already exists") from exc
    audit.record(
        db, "client_created", user_id=actor_id, ip=ip,
        detail={"client_id": client.id, "type": spec.type, "grant_types": grants},
    )
    _changed(db, state, client.id)
    return client, secret


async def update_client(
    db: AsyncSession, state: AuthState, *, client: OAuthClient, name: str | None = None,
    redirect_uris: Sequence[str] | None = None, grant_types: Sequence[str] | None = None,
    scopes: Sequence[str] | None = None, first_party: bool | None = None,
    is_active: bool | None = None, post_logout_redirect_uris: Sequence[str] | None = None,
    ip: str | None, actor_id: str | None,
) -> OAuthClient:
    uris = _check_uris(redirect_uris) if redirect_uris is not None else list(
        _lines(client.redirect_uris)
    )
    grants = grant_types if grant_types is not None else client.grant_types.split()
    client.grant_types = " ".join(_check_grants(client.type, grants, uris))
    client.redirect_uris = "\n".join(uris)
    if post_logout_redirect_uris is not None:
        client.post_logout_redirect_uris = "\n".join(_check_uris(post_logout_redirect_uris))
    if scopes is not None:
        client.scopes = format_scope(await require_scopes(db, scopes))
    if name is not None:
        client.name = name
    if first_party is not None:
        client.first_party = first_party
    if is_active is not None:
        client.is_active = is_active
    await db.flush()
    audit.record(db, "client_updated", user_id=actor_id, ip=ip, detail={"client_id": client.id})
    _changed(db, state, client.id)
    return client


async def rotate_secret(
    db: AsyncSession, state: AuthState, *, digester: TokenDigester, client: OAuthClient,
    grace_seconds: int, ip: str | None, actor_id: str | None,
) -> str:
    """A new secret, shown once; the old one keeps working for ``grace_seconds``."""
    if client.type != CONFIDENTIAL:
        raise PolicyViolation("a public client has no secret")
    secret, secret_hash = _new_secret(digester)
    client.previous_secret_hash = client.secret_hash if grace_seconds > 0 else None
    client.previous_secret_expires_at = utcnow() + timedelta(seconds=grace_seconds)
    client.secret_hash = secret_hash
    await db.flush()
    audit.record(
        db, "client_secret_rotated", user_id=actor_id, ip=ip,
        detail={"client_id": client.id, "grace_seconds": grace_seconds},
    )
    _changed(db, state, client.id)
    return secret


async def delete_client(
    db: AsyncSession, state: AuthState, *, client: OAuthClient, ip: str | None,
    actor_id: str | None,
) -> None:
    if client.id == DOCS_CLIENT_ID:
        raise Conflict("the built-in client of the API docs cannot be deleted")
    await db.delete(client)
    await db.flush()
    audit.record(db, "client_deleted", user_id=actor_id, ip=ip, detail={"client_id": client.id})
    _changed(db, state, client.id)


async def ensure_docs_client(db: AsyncSession, state: AuthState, *, issuer: str) -> None:
    """The first-party public client Swagger UI's Authorize uses, kept in step with the issuer.

    Its redirect URI is the docs' OAuth2 redirect page at this issuer, and it
    may ask for every scope. Safe to run from several workers at once.
    """
    redirect_uri = issuer.rstrip("/") + "/docs/oauth2-redirect"
    scopes = format_scope(await db.scalars(select(Scope.name)))
    client = await db.get(OAuthClient, DOCS_CLIENT_ID)
    if client is not None:
        if (client.redirect_uris, client.scopes) != (redirect_uri, scopes):
            client.redirect_uris, client.scopes = redirect_uri, scopes
            _changed(db, state, DOCS_CLIENT_ID)
        return
    try:
        async with db.begin_nested():
            db.add(OAuthClient(
                id=DOCS_CLIENT_ID, name="API docs (Swagger UI)", type=PUBLIC,
                redirect_uris=redirect_uri, post_logout_redirect_uris="",
                grant_types=AUTHORIZATION_CODE, scopes=scopes, first_party=True, is_active=True,
            ))
            await db.flush()
    except IntegrityError:  # another worker made it first
        return
