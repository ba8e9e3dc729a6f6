"""Orders: a second service, apart from Bastion, whose routes Bastion's tokens unlock.

Run it with ``uvicorn --factory --app-dir examples/orders_service main:create_app``.
"""

# No ``from __future__ import annotations``: the routes annotate with the ``auth`` of create_app.

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from bastion_resource import BastionResource, Principal
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict, Field

SCOPES = {"orders:read": "Read your orders", "orders:write": "Place orders"}


@dataclass(frozen=True, slots=True)
class OrdersSettings:
    """The service's settings, from ``ORDERS_*`` environment variables."""

    issuer: str
    audience: str
    api_key: str
    key_refetch_interval: float
    introspection_cache_ttl: float

    @classmethod
    def from_env(cls) -> "OrdersSettings":
        api_key = os.environ.get("ORDERS_BASTION_API_KEY")
        if not api_key:
            raise RuntimeError(
                "ORDERS_BASTION_API_KEY is not set: placing an order is checked with Bastion "
                "(an API key with scope tokens:introspect)"
            )
        return cls(
            issuer=os.environ.get("ORDERS_BASTION_ISSUER", "http://127.0.0.1:8000"),
            audience=os.environ.get("ORDERS_AUDIENCE", "https://orders.example"),
            api_key=api_key,
            key_refetch_interval=float(os.environ.get("ORDERS_KEY_REFETCH_INTERVAL", "10")),
            introspection_cache_ttl=float(os.environ.get("ORDERS_INTROSPECTION_CACHE_TTL", "5")),
        )


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(default=1, ge=1, le=1000)


class OrderOut(BaseModel):
    id: str
    owner: str
    item: str
    quantity: int


class Orders:
    """Orders kept in memory, by owner (a real service would use its own database)."""

    def __init__(self) -> None:
        self._by_owner: dict[str, list[OrderOut]] = {}

    def place(self, owner: str, order: OrderIn) -> OrderOut:
        placed = OrderOut(id=str(uuid.uuid4()), owner=owner, **order.model_dump())
        self._by_owner.setdefault(owner, []).append(placed)
        return placed

    def of(self, owner: str) -> list[OrderOut]:
        return list(self._by_owner.get(owner, []))


def orders_router(auth: BastionResource, orders: Orders) -> APIRouter:
    router = APIRouter()

    @router.get("/orders")
    async def list_orders(
        principal: Annotated[Principal, auth.requires("orders:read")],
    ) -> list[OrderOut]:
        """Your orders: the token is verified here, from Bastion's published keys."""
        return orders.of(principal.subject)

    @router.post("/orders", status_code=201)
    async def place_order(
        order: OrderIn,
        principal: Annotated[Principal, auth.requires("orders:write", introspect=True)],
    ) -> OrderOut:
        """Place an order: Bastion is also asked that the token is still live (no logout)."""
        return orders.place(principal.subject, order)

    @router.get("/me")
    async def me(principal: Annotated[Principal, auth.requires()]) -> dict[str, Any]:
        """Who the token says you are."""
        return {
            "subject": principal.subject,
            "username": principal.username,
            "scopes": sorted(principal.scopes),
            "session_id": principal.session_id,
        }

    return router


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings.from_env()
    auth = BastionResource(
        issuer=settings.issuer,
        audience=settings.audience,
        api_key=settings.api_key,
        scopes=SCOPES,
        key_refetch_interval=settings.key_refetch_interval,
        introspection_cache_ttl=settings.introspection_cache_ttl,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth.lifespan(app):
            yield

    app = FastAPI(title="Orders", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(orders_router(auth, Orders()))
    return app
