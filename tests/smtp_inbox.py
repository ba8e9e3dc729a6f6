"""A real SMTP server on loopback (aiosmtpd) that keeps what it is sent (a plugin of conftest)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cret/with:odd@chars"
TOKEN_IN_LINK = re.compile(r"#token=(bs[a-z]_[A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """The aiosmtpd handler: refuses the first ``refuse`` deliveries (451), keeps the rest."""

    def __init__(self, *, refuse: int = 0, delay: float = 0.0) -> None:
        self.messages: list[EmailMessage] = []
        self.attempts = 0
        self.refuse = refuse
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.attempts <= self.refuse:
            return "451 4.3.0 try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def token_for(self, address: str) -> str:
        """The token in the newest message to ``address``."""
        messages = self.to(address)
        assert messages, f"no mail to {address}; got {[m['To'] for m in self.messages]}"
        return token_in(messages[-1])


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def token_in(message: EmailMessage) -> str:
    found = TOKEN_IN_LINK.search(text_of(message))
    assert found, "no link with a token in the message"
    return found.group(1)


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        SMTP_USER.encode(), SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok)


@contextmanager
def smtp_server(inbox: Inbox, *, authenticate: bool = False) -> Iterator[str]:
    """Serve ``inbox`` on a free loopback port; yields the ``BASTION_SMTP_URL`` to reach it."""
    port = free_port()
    options: dict[str, Any] = {}
    if authenticate:
        options = {"authenticator": _authenticate, "auth_require_tls": False}
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        credentials = f"{SMTP_USER}:{quote(SMTP_PASSWORD, safe='')}@" if authenticate else ""
        yield f"smtp://{credentials}127.0.0.1:{port}"
    finally:
        controller.stop()


async def wait_for(inbox: Inbox, count: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(inbox.messages) < count:
        assert time.monotonic() < deadline, f"{len(inbox.messages)} of {count} messages arrived"
        await asyncio.sleep(0.02)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp_url(inbox: Inbox) -> Iterator[str]:
    with smtp_server(inbox) as url:
        yield url


def smtp_settings(smtp_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that send mail to the loopback server, plus a test's indirect parameters."""
    extra: dict[str, Any] = getattr(request, "param", {})
    return {"smtp_url": smtp_url, "smtp_starttls": "off", "basic_auth": True, **extra}
