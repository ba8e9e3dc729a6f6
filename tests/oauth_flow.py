"""What a person does on the hosted login, as HTTP: read a page's form, fill it in, follow on."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit


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
