"""Talking to Bastion over HTTP: one shared client, hard deadlines, bounded JSON answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import httpx

MAX_RESPONSE_BYTES = 1 << 20


class TransportError(Exception):
    """Bastion could not be reached, or answered something other than a JSON object."""


class BastionClient:
    """GETs and form POSTs to Bastion, each bounded by ``timeout`` seconds in all.

    The ``httpx.AsyncClient`` is made on first use (never at import or construction
    time) and remade when the event loop changes; a client passed in is used as is
    and left for its owner to close.
    """

    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self._timeout = timeout
        self._given = client
        self._owned: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def timeout(self) -> float:
        return self._timeout

    def _client(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        if self._owned is None or self._loop is not loop:
            self._owned = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                follow_redirects=False,
                headers={"Accept": "application/json"},
            )
            self._loop = loop
        return self._owned

    async def get_json(self, url: str) -> dict[str, Any]:
        status, body = await self._send("GET", url)
        if status != 200:
            raise TransportError(f"GET {url} answered {status}")
        return body

    async def post_form(
        self, url: str, form: Mapping[str, str], *, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON object Bastion answers to a form POST."""
        return await self._send("POST", url, data=dict(form), headers=dict(headers))

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        client = self._client()
        try:
            async with asyncio.timeout(self._timeout):
                async with client.stream(method, url, **kwargs) as response:
                    body = await _read_bounded(response)
                    status = response.status_code
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise TransportError(f"{method} {url} failed: {type(exc).__name__}") from exc
        if status >= 400:
            return status, {}
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise TransportError(f"{method} {url} answered something other than JSON") from exc
        if not isinstance(document, dict):
            raise TransportError(f"{method} {url} answered something other than a JSON object")
        return status, document

    async def aclose(self) -> None:
        owned, self._owned, self._loop = self._owned, None, None
        if owned is not None:
            await owned.aclose()


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise TransportError(f"answer over {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
