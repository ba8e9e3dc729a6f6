"""Request and response bodies. Requests forbid unknown fields: no mass assignment."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from bastion.services.access_model import RESOURCE_IDENTIFIER_RULE, is_resource_identifier

T = TypeVar("T")
_ALLOWED_CONTROLS_IN_TEXT = frozenset("\n\r\t")


def no_controls(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("control characters are not allowed")
    return value


def _no_controls_but_lines(value: str) -> str:
    if any(
        unicodedata.category(ch) in ("Cc", "Cs") and ch not in _ALLOWED_CONTROLS_IN_TEXT
        for ch in value
    ):
        raise ValueError("control characters are not allowed")
    return value


def _checked_email(value: str) -> str:
    return no_controls(value)


Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_checked_email)]
Password = Annotated[str, Field(max_length=1024), AfterValidator(_no_controls_but_lines)]
# A password being chosen: the schema states the policy's length (8-256) so clients see it.
NewPassword = Annotated[
    str, Field(min_length=8, max_length=256), AfterValidator(_no_controls_but_lines)
]
FullName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_controls)]
Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_controls)]
Description = Annotated[str, Field(max_length=2000), AfterValidator(_no_controls_but_lines)]
KeyName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_controls)]
ScopeName = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(no_controls)]


class Input(BaseModel):
    """A request body: unknown fields refused (no mass assignment), no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


# Accounts


class RegisterIn(Input):
    """A new account. The example works as given (once: usernames are unique)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "ada",
                    "email": "ada@example.com",
                    "password": "correct-Horse-battery-42",
                    "full_name": "Ada Lovelace",
                }
            ]
        }
    )

    username: Username
    email: Email
    password: NewPassword
    full_name: FullName | None = None


class UserOut(BaseModel):
    id: str
    username: str
    email: str
    full_name: str | None
    roles: list[str]
    is_active: bool
    created_at: datetime
    email_verified: bool = False


class ProfilePatch(Input):
    email: Email | None = None
    full_name: FullName | None = None
    current_password: Password | None = None


class PasswordChange(Input):
    current_password: Password
    new_password: NewPassword


class AccountDeletion(Input):
    password: Password


FORM_FIELD_MAX = 4096
_FormSecret = Annotated[str | None, Field(max_length=FORM_FIELD_MAX)]
_FormText = Annotated[
    Annotated[str, AfterValidator(no_controls)] | None, Field(max_length=FORM_FIELD_MAX)
]


class TokenForm(BaseModel):
    """The token endpoint's form (RFC 6749 sections 4.3 and 6); other fields are ignored.

    Read by ``api.oauth_params.oauth_form``, in one pass, like the revocation
    and introspection forms below.
    """

    grant_type: _FormText = None
    username: _FormText = None
    password: _FormSecret = None
    scope: _FormText = None
    refresh_token: _FormText = None
    resource: _FormText = None  # RFC 8707: the API the token is for
    mfa_token: _FormText = None  # grant_type=urn:bastion:mfa
    code: _FormSecret = None  # a TOTP or recovery code, with the mfa_token; or an authorization code
    redirect_uri: _FormText = None  # grant_type=authorization_code
    code_verifier: _FormSecret = None  # PKCE (RFC 7636)
    client_id: _FormText = None  # a public client names itself; client_secret_post
    client_secret: _FormSecret = None


class RevokeForm(BaseModel):
    """RFC 7009's revocation request; ``token_type_hint`` is read but not needed."""

    token: Annotated[str, Field(max_length=FORM_FIELD_MAX)]
    token_type_hint: _FormText = None


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = None  # none for client_credentials
    scope: str
    id_token: str | None = None  # OpenID Connect, when ``openid`` was granted


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


# API keys


class ApiKeyIn(Input):
    name: KeyName
    scopes: Annotated[list[ScopeName], Field(max_length=20)]
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str


# Consents


class ConsentOut(BaseModel):
    """A client the caller has allowed to act for them, and what to."""

    client_id: str
    client_name: str
    scopes: list[str]
    created_at: datetime
    updated_at: datetime


# Todos


class TodoIn(Input):
    title: Title
    description: Description | None = None
    done: bool = False


class TodoPatch(Input):
    title: Title | None = None
    description: Description | None = None
    done: bool | None = None

    @model_validator(mode="after")
    def _no_null_title_or_done(self) -> TodoPatch:
        for name in ("title", "done"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TodoOut(BaseModel):
    id: str
    title: str
    description: str | None
    done: bool
    owner_id: str
    created_at: datetime
    updated_at: datetime


# Administration

RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]


class AdminUserPatch(Input):
    is_active: bool | None = None
    password: Password | None = None  # policy-checked; every session of the user ends
    # A malformed name is refused here, before any query: PostgreSQL refuses a NUL in text.
    roles: Annotated[list[RoleName], Field(max_length=10)] | None = None


class AuditEventOut(BaseModel):
    id: str
    at: datetime
    event: str
    user_id: str | None
    ip: str | None
    detail: dict[str, object] | None


# Discovery


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str


class Health(BaseModel):
    status: str


# Roles, scopes and resource servers

ScopeText = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$")
]
AccessDescription = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(no_controls)
]
ScopeList = Annotated[list[ScopeText], Field(max_length=100)]


class ScopeIn(Input):
    name: ScopeText
    description: AccessDescription


class ScopeOut(BaseModel):
    name: str
    description: str
    builtin: bool


class RoleIn(Input):
    name: RoleName
    description: AccessDescription
    scopes: ScopeList = []


class RolePatch(Input):
    description: AccessDescription | None = None
    scopes: ScopeList | None = None


class RoleOut(BaseModel):
    name: str
    description: str
    builtin: bool
    scopes: list[str]


def _absolute_uri(value: str) -> str:
    if not is_resource_identifier(value):
        raise ValueError(RESOURCE_IDENTIFIER_RULE)
    return value


class ResourceServerIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"identifier": "https://orders.example", "name": "Orders", "scopes": []}]
        }
    )

    identifier: Annotated[str, Field(min_length=3, max_length=255), AfterValidator(_absolute_uri)]
    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_controls)]
    scopes: ScopeList = []


class ResourceServerOut(BaseModel):
    id: str
    identifier: str
    name: str
    scopes: list[str]
    created_at: datetime


# Introspection (RFC 7662) and userinfo (OIDC Core 5.3)


class IntrospectForm(BaseModel):
    token: Annotated[str, Field(max_length=FORM_FIELD_MAX)]
    token_type_hint: _FormText = None


class IntrospectionOut(BaseModel):
    active: bool
    scope: str | None = None
    sub: str | None = None
    aud: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    sid: str | None = None
    username: str | None = None
    client_id: str | None = None
    token_type: str | None = None


class UserInfoOut(BaseModel):
    sub: str
    preferred_username: str
    name: str | None
    email: str


# Email verification, password reset, second factor

LinkToken = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(no_controls)]
OneTimeCode = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(no_controls)]


class LinkTokenIn(Input):
    token: LinkToken


class PasswordResetRequest(Input):
    email: Email


class PasswordResetIn(Input):
    token: LinkToken
    new_password: Password


class Accepted(BaseModel):
    detail: str


class TotpEnrolment(BaseModel):
    """Shown once: the secret, as text, as an ``otpauth://`` URI and as a QR code image."""

    secret: str
    otpauth_uri: str
    qr_code: str  # a data: URI of an SVG image


class CodeIn(Input):
    code: OneTimeCode


class RecoveryCodesOut(BaseModel):
    """Shown once; each code signs in once in place of a TOTP code."""

    recovery_codes: list[str]


class MfaDisable(Input):
    password: Password
