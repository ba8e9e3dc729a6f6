"""Server-rendered pages of the hosted login: Jinja2 templates, a strict CSP, and its cookies.

The pages load one stylesheet from Bastion itself and run no script. Forms
carry a CSRF token that is the HMAC of a random pre-login cookie, so a page
of another site can neither read nor forge it. Cookies are HttpOnly,
SameSite=Lax, and ``__Host-`` prefixed and Secure when the issuer is https.
"""

from __future__ import annotations

import hmac
import secrets
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from bastion.security.opaque_tokens import TokenDigester

CSRF_COOKIE = "bastion-csrf"
SESSION_COOKIE = "bastion-session"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("bastion", "templates/oauth"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        auto_reload=False,
    )


def content_security_policy(form_target: str | None = None) -> str:
    """No script, no frames; forms post to Bastion, which may redirect them to ``form_target``.

    Browsers hold a form's redirect to ``form-action`` too: the client's
    redirect URI must be listed or the sign-in could not return to it.
    """
    targets = ["'self'"]
    if form_target:
        parts = urlsplit(form_target)
        targets.append(f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:")
    return (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {' '.join(targets)}; frame-ancestors 'none'; base-uri 'none'"
    )


def render(
    request: Request, name: str, *, status: int = 200, form_target: str | None = None,
    **context: Any,
) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    body = _templates().get_template(name).render(root=root, **context)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": content_security_policy(form_target)}
    return HTMLResponse(body, status_code=status, headers=headers)


def stylesheet() -> str:
    loader = _templates().loader
    assert loader is not None
    source, _, _ = loader.get_source(_templates(), "style.css")
    return source


class Cookies:
    """The names and attributes of the hosted login's cookies, for one issuer."""

    def __init__(self, *, issuer: str, digester: TokenDigester) -> None:
        self.secure = issuer.startswith("https://")
        prefix = "__Host-" if self.secure else ""
        self.csrf = prefix + CSRF_COOKIE
        self.session = prefix + SESSION_COOKIE
        self._digester = digester

    def set(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, path="/", secure=self.secure, httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def csrf_seed(self, request: Request) -> tuple[str, bool]:
        """The pre-login cookie's value, and whether it is new (to be set on the answer)."""
        current = request.cookies.get(self.csrf)
        if current and 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(32), True

    def csrf_token(self, seed: str) -> str:
        return self._digester.digest("csrf:" + seed)

    def csrf_ok(self, request: Request, token: str | None) -> bool:
        seed = request.cookies.get(self.csrf)
        if not seed or not token:
            return False
        return hmac.compare_digest(self.csrf_token(seed), token)
