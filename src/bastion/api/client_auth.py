"""How an OAuth client proves itself: HTTP Basic, client_secret_post, or (public) its client_id.

RFC 6749 2.3.1: in Basic, the id and secret are form-encoded before base64.
A request may use one method only. Also the caller of introspection, which
may be a confidential client instead of an API key with ``tokens:introspect``.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from fastapi import Request

from bastion.api.deps import authenticate
from bastion.api.schemas import TokenForm
from bastion.errors import InvalidClient, InvalidRequest
from bastion.runtime import Runtime
from bastion.scopes import TOKENS_INTROSPECT
from bastion.services.clients import ClientRegistry, ClientView
from bastion.services.principals import Principal

INTROSPECTION_SCOPES = (TOKENS_INTROSPECT,)


def basic_client(request: Request) -> tuple[str, str] | None:
    """The (client_id, secret) of an ``Authorization: Basic`` header, if there is one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidClient("malformed Basic credentials") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


async def token_client(request: Request, form: TokenForm, clients: ClientRegistry) -> ClientView:
    """The client of a token request, authenticated as its registration requires."""
    basic = basic_client(request)
    if basic is not None:
        if form.client_secret is not None:
            raise InvalidRequest("use one client authentication method, not two")
        if form.client_id is not None and form.client_id != basic[0]:
            raise InvalidRequest("client_id differs from the authenticated client")
        return await clients.authenticate(*basic)
    if not form.client_id:
        raise InvalidClient("client authentication or client_id is required")
    return await clients.authenticate(form.client_id, form.client_secret)


async def introspection_caller(request: Request) -> str:
    """Who asks: a confidential client by Basic, else a credential with ``tokens:introspect``."""
    runtime: Runtime = request.app.state.runtime  # as in ``authenticate``: no sub-dependency
    credentials = basic_client(request)
    if credentials is not None and await runtime.clients.get(credentials[0]) is not None:
        client = await runtime.clients.authenticate(*credentials)
        if client.confidential:
            return client.id
        raise InvalidClient("a public client cannot introspect")
    principal: Principal = await authenticate(request, INTROSPECTION_SCOPES)
    return principal.client_id or principal.user.id


# What the OpenAPI document says of the caller (its route's ``openapi_extra``): it is
# read from the request itself, so no security dependency declares it.
INTROSPECTION_SECURITY = {"security": [{"OAuth2": list(INTROSPECTION_SCOPES)}]}
