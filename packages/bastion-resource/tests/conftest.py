"""Fixtures for the kit's tests: a fake Bastion behind ``httpx.MockTransport`` and signed tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bastion_resource import BastionResource
from tests.kit_app import orders_app
from tests.kit_support import API_KEY, AUDIENCE, ISSUER, FakeBastion, SigningKey


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("key-1")


@pytest.fixture
def bastion(key: SigningKey) -> FakeBastion:
    return FakeBastion(keys=[key], api_key=API_KEY)


@pytest.fixture
def make_auth(bastion: FakeBastion) -> Callable[..., BastionResource]:
    def make(**options: Any) -> BastionResource:
        client = httpx.AsyncClient(transport=httpx.MockTransport(bastion.handle))
        defaults: dict[str, Any] = {"api_key": API_KEY, "http_client": client}
        return BastionResource(issuer=ISSUER, audience=AUDIENCE, **{**defaults, **options})

    return make


@pytest.fixture
def auth(make_auth: Callable[..., BastionResource]) -> BastionResource:
    return make_auth()


@pytest.fixture
async def client(auth: BastionResource) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=orders_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as http:
        yield http
    await auth.aclose()
