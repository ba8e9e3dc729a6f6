"""The README's snippet runs as written and guards its route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

README = Path(__file__).parent.parent / "README.md"


def readme_app() -> FastAPI:
    """The app of the README's first Python snippet."""
    snippet = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert snippet, "the README's first Python snippet is missing"
    namespace: dict[str, Any] = {}
    exec(compile(snippet.group(1), str(README), "exec"), namespace)  # noqa: S102
    app: FastAPI = namespace["app"]
    return app


def test_the_readme_snippet_declares_its_scope_in_openapi() -> None:
    schema = readme_app().openapi()
    flow = schema["components"]["securitySchemes"]["Bastion"]["flows"]["password"]
    assert flow["tokenUrl"].startswith("http://127.0.0.1:8000/auth/token")
    assert schema["paths"]["/orders"]["get"]["security"] == [{"Bastion": ["orders:read"]}]


async def test_the_readme_snippet_answers_401_without_a_token() -> None:
    transport = httpx.ASGITransport(app=readme_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as http:
        response = await http.get("/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
