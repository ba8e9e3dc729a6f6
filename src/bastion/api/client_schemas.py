"""Bodies of the client registry (``/admin/clients``). Requests forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bastion.api.schemas import Input, ScopeList, no_controls
from bastion.services.clients import MAX_URI_LENGTH

ClientName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_controls)]
Uri = Annotated[str, Field(min_length=1, max_length=MAX_URI_LENGTH)]
UriList = Annotated[list[Uri], Field(max_length=20)]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
GrantList = Annotated[list[GrantType], Field(min_length=1, max_length=3)]
DEFAULT_GRANTS: tuple[GrantType, ...] = ("authorization_code", "refresh_token")


class ClientIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Photo app",
                    "type": "public",
                    "redirect_uris": ["https://photos.example/callback"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "scopes": ["openid", "me"],
                }
            ]
        }
    )

    name: ClientName
    type: Literal["public", "confidential"]
    redirect_uris: UriList = Field(default_factory=list)
    grant_types: GrantList = Field(default_factory=lambda: [*DEFAULT_GRANTS])
    scopes: ScopeList = Field(default_factory=list)
    first_party: bool = False  # a first-party client's users are not asked for consent
    post_logout_redirect_uris: UriList = Field(default_factory=list)


class ClientPatch(Input):
    name: ClientName | None = None
    redirect_uris: UriList | None = None
    grant_types: GrantList | None = None
    scopes: ScopeList | None = None
    first_party: bool | None = None
    is_active: bool | None = None
    post_logout_redirect_uris: UriList | None = None


class ClientOut(BaseModel):
    client_id: str
    name: str
    type: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scopes: list[str]
    first_party: bool
    is_active: bool
    created_at: datetime


class ClientCreated(ClientOut):
    client_secret: str | None = None  # a confidential client's, shown this once


class ClientSecretOut(BaseModel):
    client_id: str
    client_secret: str  # shown this once; the previous one works until previous_secret_expires_at
    previous_secret_expires_at: datetime | None
