"""A clear answer when Bastion's lifespan never ran, as under ``app.mount(...)``."""

from __future__ import annotations

import logging

from starlette.types import Receive, Scope, Send

from bastion.asgi import HttpMiddleware, send_json

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
        await send_json(send, 503, {"detail": NOT_STARTED}, [(b"retry-after", b"60")])
