"""Logging: plain or JSON lines, a request id on every line, one access line per request.

Nothing that could carry a credential is ever logged: access lines hold the
path without its query string, and no request header or body is written.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from bastion.asgi import HttpMiddleware, on_response_start

request_id_var: ContextVar[str | None] = ContextVar("bastion_request_id", default=None)
access_logger = logging.getLogger("bastion.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(*, level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class AccessLogMiddleware(HttpMiddleware):
    """Assigns a request id (``X-Request-ID``) and writes one access line per request."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"x-request-id"),
            "",
        )
        request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        def tag(message: Message) -> None:
            nonlocal status
            status = message["status"]
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]

        try:
            await self.app(scope, receive, on_response_start(send, tag))
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_logger.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "peer": client[0] if client else None,
                    },
                )
            request_id_var.reset(token)
