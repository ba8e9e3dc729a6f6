"""Bastion's settings: one typed object read from ``BASTION_*`` variables and ``.env``."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values copied from tutorials and sample configs; never accepted as a secret.
_PLACEHOLDER_SECRETS = frozenset(
    {
        "secret",
        "changeme",
        "change-me",
        "your-secret-key",
        "your-secret-key-here",
        "supersecret",
        "secret-key",
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
    }
)

JwtAlgorithm = Literal["ES256", "EdDSA", "RS256"]
DEFAULT_REDIS_TIMEOUT = 0.25  # seconds


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.replace(",", " ").split() if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything Bastion can be told; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="BASTION_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./bastion.db"
    redis_url: SecretStr | None = None
    # Seconds for every Redis connect and reply: a stopped or frozen Redis must not hold a request.
    redis_timeout: float = Field(default=DEFAULT_REDIS_TIMEOUT, gt=0, le=30)
    # Seconds startup waits for the state fan-out's first subscription; then it serves
    # without one (changes from other processes arrive within STATE_CACHE_TTL) and keeps
    # reconnecting in the background.
    redis_startup_wait: float = Field(default=5.0, ge=0, le=60)
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "bastion"
    jwt_algorithm: JwtAlgorithm = "ES256"
    access_token_ttl: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl: int = Field(default=30 * 86_400, ge=60)
    session_max_lifetime: int = Field(default=90 * 86_400, ge=60)
    secret_key: SecretStr | None = None

    argon2_memory_cost: int = Field(default=19_456, ge=19_456)
    argon2_time_cost: int = Field(default=2, ge=2)
    # None: one per CPU this process may run on (a memory-hard hash gains nothing
    # from more threads than cores, and loses cache to their switching).
    hashing_threads: int | None = Field(default=None, ge=1)

    # Off by default: each Basic request costs a password hash, and a Basic challenge makes
    # browsers pop their native sign-in dialog.
    basic_auth: bool = False
    api_key_query: bool = False
    # Self-service sign-up at POST /auth/register; closed: accounts come from an administrator.
    registration: Literal["open", "closed"] = "open"
    register_max_per_ip: int = Field(default=10, ge=1)  # an hour; a taken name counts too

    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window: int = Field(default=900, ge=1)
    ip_max_failures: int = Field(default=30, ge=1)
    ip_failure_window: int = Field(default=60, ge=1)

    # Mail (verification and password-reset links). No SMTP_URL: messages are logged.
    smtp_url: SecretStr | None = None  # smtp://user:pass@host:587, smtps:// for implicit TLS
    smtp_starttls: Literal["auto", "required", "off"] = "auto"
    smtp_timeout: float = Field(default=10.0, gt=0)
    mail_from: str = "Bastion <bastion@localhost>"
    mail_attempts: int = Field(default=3, ge=1, le=10)
    # Where links point: a page that posts the token (carried in the fragment) back to the API.
    verify_email_url: str | None = None  # default: ISSUER + /verify-email
    password_reset_url: str | None = None  # default: ISSUER + /reset-password
    require_verified_email: bool = False
    email_verification_ttl: int = Field(default=86_400, ge=60)
    password_reset_ttl: int = Field(default=1_800, ge=60, le=86_400)
    mail_max_per_address: int = Field(default=5, ge=1)  # per purpose and address, per window
    password_reset_max_per_ip: int = Field(default=20, ge=1)
    mail_limit_window: int = Field(default=3_600, ge=1)
    # Second factor (TOTP)
    totp_issuer: str = "Bastion"  # the name authenticator apps show
    mfa_token_ttl: int = Field(default=300, ge=30, le=1_800)
    # OAuth 2.1 / OpenID Connect authorization server
    password_grant: bool = True  # RFC 9700 says MUST NOT; on for the FastAPI tutorial flow
    authorization_code_ttl: int = Field(default=60, ge=10, le=600)
    browser_session_ttl: int = Field(default=8 * 3_600, ge=60)  # the hosted login's cookie
    client_secret_grace: int = Field(default=86_400, ge=0)  # the old secret after a rotation

    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_size: int = Field(default=65_536, ge=1024)

    state_cache_ttl: float = Field(default=1.0, ge=0.0, le=60.0)
    key_refresh_interval: float = Field(default=30.0, ge=1.0)
    audit_retention_days: int = Field(default=365, ge=1)
    # The todo API of the tutorial flow, a client of the public API like any app's own routes.
    demo_todos: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    metrics: bool = False  # serve Prometheus metrics at /metrics (expose it to the scraper only)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            return value
        scheme = value.partition("://")[0] or "(none)"
        raise ValueError(
            f"the URL scheme {scheme[:40]!r} is not supported: use sqlite+aiosqlite:///path.db "
            "or postgresql+asyncpg://user@host/db"
        )

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _lists_from_env(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("list the allowed origins; '*' is refused with credentials")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        scheme, sep, rest = (value.get_secret_value() if value else "smtp://x").partition("://")
        if scheme not in ("smtp", "smtps") or not sep or not rest.rsplit("@", 1)[-1]:
            raise ValueError("must look like smtp://user:pass@host:587 or smtps://host:465")
        return value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in _PLACEHOLDER_SECRETS or len(raw) < 32:
            raise ValueError("BASTION_SECRET_KEY must be at least 32 random characters")
        return value

    @cached_property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
