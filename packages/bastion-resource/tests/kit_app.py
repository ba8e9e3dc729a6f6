"""The protected app the kit's tests call: one locally verified route, one introspected route."""

# No ``from __future__ import annotations``: the routes annotate with the local ``auth``.

from typing import Annotated, Any

from fastapi import FastAPI

from bastion_resource import BastionResource, Principal


def orders_app(auth: BastionResource) -> FastAPI:
    app = FastAPI()

    @app.get("/orders")
    async def list_orders(
        principal: Annotated[Principal, auth.requires("orders:read")],
    ) -> dict[str, Any]:
        return {"subject": principal.subject, "scopes": sorted(principal.scopes)}

    @app.post("/orders", status_code=201)
    async def create_order(
        principal: Annotated[Principal, auth.requires("orders:write", introspect=True)],
    ) -> dict[str, Any]:
        return {"subject": principal.subject, "scopes": sorted(principal.scopes)}

    return app
