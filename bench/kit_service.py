"""The same route twice, bare and protected by bastion-resource, for the kit's benchmark row.

Run with uvicorn's ``--factory``: ``KIT_ISSUER`` is the Bastion it trusts and
``KIT_AUDIENCE`` the API identifier its tokens must carry. Both routes answer
the same body, so the ratio of their rates is the cost of the kit alone.
"""

# No ``from __future__ import annotations``: the route's Annotated dependency names the
# local ``auth``, which FastAPI can only see as an evaluated annotation.
import os
from typing import Annotated

from bastion_resource import BastionResource, Principal
from fastapi import FastAPI

ORDERS = [{"id": "o-1", "item": "tea", "quantity": 2}, {"id": "o-2", "item": "cups", "quantity": 6}]


def create_app() -> FastAPI:
    auth = BastionResource(issuer=os.environ["KIT_ISSUER"], audience=os.environ["KIT_AUDIENCE"])
    app = FastAPI(lifespan=auth.lifespan)

    @app.get("/bare/orders")
    async def bare_orders() -> list[dict[str, object]]:
        return ORDERS

    @app.get("/orders")
    async def orders(
        principal: Annotated[Principal, auth.requires("orders:read")],
    ) -> list[dict[str, object]]:
        return ORDERS

    return app
