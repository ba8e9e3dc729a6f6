"""Outgoing mail: SMTP through aiosmtplib, sent off the request path with bounded retries.

A message carries a secret (a verification or reset link), so nothing here logs
a body except the development mode: with no ``SMTP_URL`` the whole message is
written to the log, never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

logger = logging.getLogger("bastion.mail")
StartTls = Literal["auto", "required", "off"]
_START_TLS: dict[StartTls, bool | None] = {"auto": None, "required": True, "off": False}


@dataclass(frozen=True, slots=True)
class Mail:
    """One message to one recipient; ``purpose`` names it in logs instead of its content."""

    to: str
    subject: str
    text: str
    html: str
    purpose: str


@dataclass(frozen=True, slots=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # implicit TLS (smtps://)
    start_tls: bool | None  # None: when the server offers it
    timeout: float

    def __repr__(self) -> str:
        return f"SmtpServer({self.hostname}:{self.port}, tls={self.use_tls})"

    @classmethod
    def from_url(cls, url: str, *, starttls: StartTls, timeout: float) -> SmtpServer:
        """``smtp://user:pass@host:port`` (STARTTLS per ``starttls``) or ``smtps://`` (implicit TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://...")
        implicit = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=False if implicit else _START_TLS[starttls],
            timeout=timeout,
        )


def build_message(mail: Mail, *, sender: str) -> EmailMessage:
    """A multipart/alternative message: the plain text first, the HTML as the richer part."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


class Mailer:
    """Queues messages as background tasks; each is tried ``attempts`` times, then given up.

    A delivery starts ``delay`` seconds after it is queued, once the response
    that queued it has left: started at once, its first steps would run between
    the response's own and make a request that sends mail measurably slower than
    one that does not (a password-reset request must take the same time for
    any address).
    """

    def __init__(
        self,
        *,
        sender: str,
        server: SmtpServer | None,
        attempts: int = 3,
        backoff: float = 1.0,
        delay: float = 0.05,
    ) -> None:
        self.sender = sender
        self.server = server
        self.attempts = attempts
        self.backoff = backoff
        self.delay = delay
        self._pending: set[asyncio.Task[bool]] = set()

    def send(self, mail: Mail) -> None:
        """Deliver ``mail`` in the background (call it once the unit of work has committed)."""
        task = asyncio.get_running_loop().create_task(self._deliver(mail))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for every queued message to be delivered or given up."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self, *, grace: float = 5.0) -> None:
        """Let queued messages finish for up to ``grace`` seconds, then cancel the rest."""
        if not self._pending:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace)
        for task in list(self._pending):
            task.cancel()

    async def _deliver(self, mail: Mail) -> bool:
        await asyncio.sleep(self.delay)
        server = self.server
        if server is None:
            logger.warning(
                "mail not sent (no BASTION_SMTP_URL; development mode), to %s: %s\n%s",
                mail.to, mail.subject, mail.text,
            )
            return True
        message = build_message(mail, sender=self.sender)
        for attempt in range(1, self.attempts + 1):
            try:
                await aiosmtplib.send(
                    message,
                    hostname=server.hostname,
                    port=server.port,
                    username=server.username,
                    password=server.password,
                    use_tls=server.use_tls,
                    start_tls=server.start_tls,
                    timeout=server.timeout,
                )
            except (aiosmtplib.SMTPException, OSError) as exc:
                # The exception's class and SMTP code only: its text may quote the server.
                code = getattr(exc, "code", None)
                logger.warning(
                    "%s mail delivery attempt %d/%d failed: %s%s",
                    mail.purpose, attempt, self.attempts, type(exc).__name__,
                    f" (SMTP {code})" if code else "",
                )
                if attempt < self.attempts:
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            else:
                logger.info("%s mail delivered", mail.purpose)
                return True
        logger.error("%s mail given up after %d attempts", mail.purpose, self.attempts)
        return False
