"""Fan-out of state changes between processes and instances over Redis pub/sub.

When this process invalidates a cached user, session or API key (a logout,
a disable, a password or role change, a key revocation), it publishes the
key; every other process drops its cached copy on receipt, so the change is
honoured everywhere within milliseconds rather than within the cache TTL.
If the subscription drops, each process clears its whole cache on reconnect;
it tries again after 0.5 s, then twice as long each time (at most 10 s),
with one warning when it is lost and one line when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets

import redis.asyncio as redis

from bastion.services.auth_state import AuthState

logger = logging.getLogger(__name__)
CHANNEL = "bastion:state"
FIRST_RECONNECT_DELAY = 0.5
MAX_RECONNECT_DELAY = 10.0


class StateEvents:
    def __init__(self, client: redis.Redis, state: AuthState, *, startup_wait: float) -> None:
        self._client = client
        self._state = state
        self._startup_wait = startup_wait  # seconds start() waits for the first subscription
        self._origin = secrets.token_hex(8)
        self._pending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._lost = False  # a warning was logged and no subscription has worked since
        self._publish_failing = False

    async def start(self) -> None:
        self._state.listeners.append(self._publish_soon)
        self._listener = asyncio.create_task(self._listen_forever())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=self._startup_wait)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _publish_soon(self, kind: str, key: str) -> None:
        message = json.dumps({"o": self._origin, "k": kind, "v": key})
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self._client.publish(CHANNEL, message)
        except redis.RedisError as exc:
            if not self._publish_failing:  # one line per outage, not one per change
                self._publish_failing = True
                logger.warning(
                    "could not publish state changes (%s); peers rely on the cache TTL",
                    type(exc).__name__,
                )
        else:
            self._publish_failing = False

    async def _listen_forever(self) -> None:
        delay = FIRST_RECONNECT_DELAY
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and start clean
                self._note_lost(exc)
            if self._subscribed.is_set():
                delay = FIRST_RECONNECT_DELAY  # it had worked: back off from the start
            self._subscribed.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY)

    def _note_lost(self, exc: Exception) -> None:
        if not self._lost:
            self._lost = True
            logger.warning(
                "state subscription lost (%s); reconnecting with backoff. Until then, "
                "changes made elsewhere reach this process within the cache TTL",
                type(exc).__name__,
            )

    async def _listen(self) -> None:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(CHANNEL)
            # Anything missed while not subscribed may be cached stale: start clean.
            self._state.invalidate("*", "", broadcast=False)
            self._subscribed.set()
            if self._lost:
                self._lost = False
                logger.warning("state subscription restored; the cache starts clean")
            async for message in pubsub.listen():
                self._apply(message.get("data"))

    def _apply(self, data: object) -> None:
        try:
            event = json.loads(data if isinstance(data, (str, bytes)) else "")
        except ValueError:
            return
        if not isinstance(event, dict) or event.get("o") == self._origin:
            return
        kind, key = event.get("k"), event.get("v")
        if isinstance(kind, str) and (kind in self._state.kinds or kind == "*") and isinstance(key, str):
            self._state.invalidate(kind, key, broadcast=False)


async def announce(client: redis.Redis, changes: list[tuple[str, str]]) -> None:
    """Tell every running process of changes made outside them (by the CLI, say)."""
    origin = secrets.token_hex(8)
    for kind, key in changes:
        await client.publish(CHANNEL, json.dumps({"o": origin, "k": kind, "v": key}))
