"""What a person does on the hosted login, as HTTP: read a page's form, fill it in, follow on."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from servers import PASSWORD


class FormReader(HTMLParser):
    """The fields of the page's (first) form, and its submit buttons' values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = {key: value or "" for key, value in attrs}
        if tag == "form" and self.action is None:
            self.action = named.get("action", "")
        elif tag == "input" and "name" in named:
            self.fields[named["name"]] = named.get("value", "")
        elif tag == "button" and "name" in named:
            self.buttons.setdefault(named["name"], []).append(named.get("value", ""))


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    assert reader.action, "the page has no form"
    return reader


def pkce() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def login_fields(page: str, username: str, password: str) -> dict[str, str]:
    form = read_form(page)
    assert form.fields.get("action") == "login", "not the login page"
    return {**form.fields, "username": username, "password": password}


def consent_fields(page: str, decision: str = "allow") -> dict[str, str]:
    form = read_form(page)
    assert form.fields.get("action") == "consent", "not the consent page"
    return {**form.fields, "decision": decision}


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def create_admin(workdir: Path, username: str) -> str:
    """An admin account in the database of the server run in ``workdir``; its access token."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    environment["BASTION_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'serve.db'}"
    subprocess.run(
        [sys.executable, "-m", "bastion", "users", "create", username,
         "--email", f"{username}@example.com", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n", text=True, env=environment, check=True, capture_output=True,
    )
    return username


def admin_headers(base: str, username: str) -> dict[str, str]:
    answer = httpx.post(f"{base}/auth/token", data={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}
