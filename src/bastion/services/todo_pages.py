"""Rendered pages of each owner's todo list, cached per process like the auth state.

A page is dropped when its owner's todos change (in this process at commit,
in others through the state fan-out) and otherwise lives ``ttl`` seconds, the
same bound as every other per-process cache (see ``auth_state``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

MAX_OWNERS = 50_000
Page = tuple[int, int]  # (limit, offset)


class TodoPages:
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._pages: dict[str, dict[Page, tuple[float, bytes]]] = {}
        self._generation = 0

    async def get(
        self, owner_id: str, page: Page, render: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        entry = self._pages.get(owner_id, {}).get(page)
        if entry is not None and time.monotonic() - entry[0] < self._ttl:
            return entry[1]
        generation = self._generation
        body = await render()
        # Not kept if the owner's todos changed while it was read.
        if self._ttl > 0 and generation == self._generation:
            if len(self._pages) >= MAX_OWNERS:
                self._pages.clear()
            self._pages.setdefault(owner_id, {})[page] = (time.monotonic(), body)
        return body

    def invalidate(self, owner_id: str) -> None:
        self._generation += 1
        self._pages.pop(owner_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._pages.clear()
