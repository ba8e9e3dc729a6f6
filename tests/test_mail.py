"""Mail over real SMTP (aiosmtpd on loopback): delivery, credentials, retries, the log-only mode."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from bastion.config import Settings
from bastion.runtime import Runtime
from bastion.services import mail_templates
from bastion.services.account_kit import build_account_kit
from bastion.services.mailer import Mail, Mailer, SmtpServer
from bastion.services.throttle import create_storage
from conftest import Api
from smtp_inbox import (
    Inbox,
    free_port,
    html_of,
    smtp_server,
    smtp_settings,
    text_of,
    token_in,
    wait_for,
)


@pytest.fixture
def settings_overrides(smtp_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    return smtp_settings(smtp_url, request)


MAIL = Mail(to="ada@example.com", subject="Hi", text="plain", html="<p>rich</p>", purpose="test")


def _mailer(url: str, **options: Any) -> Mailer:
    server = SmtpServer.from_url(url, starttls="off", timeout=5)
    return Mailer(sender="Bastion <bastion@example.com>", server=server, **options)


@pytest.mark.parametrize(
    ("url", "starttls", "expected"),
    [
        ("smtp://mx.example.com", "auto", ("mx.example.com", 587, None, None, False, None)),
        ("smtp://u:p%40ss@mx:2525", "required", ("mx", 2525, "u", "p@ss", False, True)),
        ("smtp://mx:25", "off", ("mx", 25, None, None, False, False)),
        ("smtps://u:p@mx.example.com", "required", ("mx.example.com", 465, "u", "p", True, False)),
    ],
)
def test_smtp_url_names_server_credentials_and_tls(
    url: str, starttls: Any, expected: tuple[object, ...]
) -> None:
    server = SmtpServer.from_url(url, starttls=starttls, timeout=3)
    assert (
        server.hostname, server.port, server.username, server.password, server.use_tls,
        server.start_tls,
    ) == expected
    assert "p@ss" not in repr(server) and ":p@" not in repr(server)


@pytest.mark.parametrize("url", ["http://mx.example.com", "smtp://", "mx.example.com:25"])
def test_a_url_that_is_not_smtp_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpServer.from_url(url, starttls="auto", timeout=3)


def test_html_part_escapes_every_value() -> None:
    mail = mail_templates.render(
        "verify_email", to="a@example.com", username="<b>x</b>", email="a@example.com",
        link="https://h/verify-email#token=bsv_a&b", valid_for="24 hours",
    )
    assert "<b>x</b>" in mail.text and "&lt;b&gt;x&lt;/b&gt;" in mail.html
    assert 'href="https://h/verify-email#token=bsv_a&amp;b"' in mail.html


async def test_a_message_arrives_as_text_and_html(inbox: Inbox, smtp_url: str) -> None:
    mailer = _mailer(smtp_url)
    mailer.send(MAIL)
    await mailer.drain()
    (message,) = inbox.messages
    assert (message["From"], message["To"], message["Subject"]) == (
        "Bastion <bastion@example.com>", "ada@example.com", "Hi",
    )
    assert text_of(message).strip() == "plain"
    assert html_of(message).strip() == "<p>rich</p>"


async def test_smtp_credentials_from_the_url_log_in() -> None:
    inbox = Inbox()
    with smtp_server(inbox, authenticate=True) as url:
        mailer = _mailer(url)
        mailer.send(MAIL)
        await mailer.drain()
        wrong = _mailer(url.replace("mailer:", "intruder:"), attempts=1)
        wrong.send(MAIL)
        await wrong.drain()
    assert len(inbox.messages) == 1


async def test_a_refused_delivery_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox(refuse=2)
    with smtp_server(inbox) as url:
        mailer = _mailer(url, attempts=3, backoff=0.01)
        mailer.send(MAIL)
        await mailer.drain()
    assert inbox.attempts == 3 and len(inbox.messages) == 1
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2


async def test_retries_are_bounded_and_failures_logged_without_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    inbox = Inbox(refuse=100)
    secret = Mail(to="b@example.com", subject="s", text="bsp_SECRET", html="bsp_SECRET",
                  purpose="password_reset")
    with smtp_server(inbox) as url:
        mailer = _mailer(url, attempts=3, backoff=0.01)
        mailer.send(secret)
        await mailer.drain()
    assert inbox.attempts == 3 and not inbox.messages
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bastion")]
    assert any("given up after 3 attempts" in line for line in ours)
    assert all("bsp_SECRET" not in line for line in ours)


async def test_an_unreachable_server_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    mailer = _mailer(f"smtp://127.0.0.1:{free_port()}", attempts=2, backoff=0.01)
    mailer.send(MAIL)
    await mailer.drain()
    assert any("given up" in r.getMessage() for r in caplog.records)


async def test_without_smtp_url_the_message_and_link_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bastion.mail")
    mailer = Mailer(sender="bastion@localhost", server=None)
    mailer.send(Mail(to="c@example.com", subject="Link", text="open #token=bsv_x",
                     html="", purpose="verify_email"))
    await mailer.drain()
    (record,) = [r for r in caplog.records if r.name == "bastion.mail"]
    assert record.levelno == logging.WARNING
    assert "c@example.com" in record.getMessage() and "#token=bsv_x" in record.getMessage()


async def test_settings_choose_smtp_or_the_log(smtp_url: str) -> None:
    base = {"_env_file": None, "issuer": "https://auth.example.com/"}
    logged = build_account_kit(Settings(**base), master_key=b"k" * 32, storage=create_storage(None))
    assert logged.mailer.server is None
    assert logged.verify_email_url == "https://auth.example.com/verify-email"
    sent = build_account_kit(
        Settings(**base, smtp_url=smtp_url, mail_from="x@example.com"),
        master_key=b"k" * 32, storage=create_storage(None),
    )
    assert sent.mailer.server is not None and sent.mailer.sender == "x@example.com"


async def test_mail_is_sent_off_the_request_path(api: Api, runtime: Runtime) -> None:
    """A slow SMTP server does not slow the request that queues the message."""
    inbox = Inbox(delay=1.5)
    with smtp_server(inbox) as url:
        assert runtime.account_kit is not None
        runtime.account_kit.mailer.server = SmtpServer.from_url(url, starttls="off", timeout=5)
        started = time.perf_counter()
        response = await api.register("slowmail")
        elapsed = time.perf_counter() - started
        assert response.status_code == 201
        assert elapsed < 1.0
        await wait_for(inbox, 1)
    assert token_in(inbox.messages[0]).startswith("bsv_")


async def test_no_link_reaches_the_log_when_mail_is_sent(
    api: Api, inbox: Inbox, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await api.register("quietmail")).status_code == 201
    assert runtime.account_kit is not None
    await runtime.account_kit.mailer.drain()
    token = token_in(inbox.messages[0])
    # aiosmtpd (the test's server, "mail.log") may log what it receives; Bastion must not.
    lines = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.")]
    assert lines and all(token not in line and token[:20] not in line for line in lines)


@pytest.mark.parametrize("url", ["http://mx.example.com", "mx.example.com", "smtp://u:p@"])
def test_settings_refuse_a_url_that_is_not_smtp(url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="smtp_url") as raised:
        Settings(_env_file=None, smtp_url=url)
    # As the CLI reports it (cli_support.load_settings): without the input, a password.
    assert "u:p" not in str(raised.value.errors(include_input=False, include_url=False))
