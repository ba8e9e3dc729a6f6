"""Pure ASGI middleware building blocks: HTTP-only dispatch and a response-start hook."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMiddleware:
    """Base for middleware that acts on HTTP requests only; anything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


async def send_json(
    send: Send, status: int, body: object, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A complete JSON response, for middleware that answers before the app."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def on_response_start(send: Send, hook: Callable[[Message], None]) -> Send:
    """``send``, letting ``hook`` see (and change) the response-start message first."""

    async def hooked(message: Message) -> None:
        if message["type"] == "http.response.start":
            hook(message)
        await send(message)

    return hooked
