"""A clear answer when Bastion's lifespan never ran, as under ``app.mount(...)``."""

from __future__ import annotations

import json
import logging

from starlette.types import Receive, Scope, Send

from bastion.asgi import HttpMiddleware

logger = logging.getLogger(__name__)
NOT_STARTED = (
    "Bastion is not started: its lifespan did not run. app.mount() does not run a mounted "
    "app's lifespan; add Bastion to your app with bastion.Bastion(...).install(app) instead."
)


class StartedCheckMiddleware(HttpMiddleware):
    """503 with the reason, logged once, instead of a 500 on every request."""

    _logged = False

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope.get("app")
        if app is None or getattr(app.state, "runtime", None) is not None:
            await self.app(scope, receive, send)
            return
        if not self._logged:
            logger.error(NOT_STARTED)
            self._logged = True
        body = json.dumps({"detail": NOT_STARTED}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"60"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
