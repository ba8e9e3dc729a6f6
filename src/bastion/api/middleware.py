"""Pure ASGI middleware: the request-body limit and the security response headers."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.asgi import HttpMiddleware, on_response_start, send_json

SENSITIVE_PREFIXES = ("/auth", "/users", "/admin")
HTTP1 = frozenset({"1.0", "1.1"})


class _TooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing passes it on."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


async def _send_413(send: Send) -> None:
    await send_json(send, 413, {"detail": "request body too large"}, [(b"connection", b"close")])


class BodyLimitMiddleware(HttpMiddleware):
    """413 for bodies over ``max_size`` bytes: declared, chunked, or lying about their length."""

    def __init__(self, app: ASGIApp, *, max_size: int) -> None:
        super().__init__(app)
        self.max_size = max_size

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_size + 1
                if declared > self.max_size:
                    await _send_413(send)
                    return
                has_body = declared > 0
            elif name == b"transfer-encoding":
                has_body = True
        if not has_body and scope.get("http_version", "1.1") in HTTP1:
            # HTTP/1.x frames a body by Content-Length or Transfer-Encoding: neither, no body
            # (most requests: GETs). HTTP/2 may send one without either, so it is counted.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_size:
                    raise _TooLarge
            return message

        def note_start(message: Message) -> None:
            nonlocal started
            started = True

        try:
            await self.app(scope, limited_receive, on_response_start(send, note_start))
        except _TooLarge:
            if not started:
                await _send_413(send)


class SecurityHeadersMiddleware(HttpMiddleware):
    """``nosniff`` on every response; ``no-store`` on everything sensitive."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sensitive = scope["path"].startswith(SENSITIVE_PREFIXES)

        def add_headers(message: Message) -> None:
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            headers.append((b"x-content-type-options", b"nosniff"))
            if sensitive and b"cache-control" not in names:
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers

        await self.app(scope, receive, on_response_start(send, add_headers))
