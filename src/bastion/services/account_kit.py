"""What email verification, password reset and the second factor share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from limits.aio.storage import Storage
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.config import Settings
from bastion.db.engine import on_commit
from bastion.security.secret_box import SecretBox
from bastion.services import mail_templates
from bastion.services.mailer import Mail, Mailer, SmtpServer
from bastion.services.request_limits import Quota

TOTP_KEY_INFO = b"bastion/totp-secret/v1"
REGISTER_WINDOW = 3_600  # seconds: REGISTER_MAX_PER_IP is per hour


@dataclass(frozen=True)
class AccountKit:
    mailer: Mailer
    verify_email_url: str
    password_reset_url: str
    verification_ttl: int
    reset_ttl: int
    address_quota: Quota  # per purpose and address: no mail bombing of one inbox
    reset_ip_quota: Quota
    register_ip_quota: Quota  # sign-ups per IP: each one hashes a password and sends a mail
    totp_box: SecretBox
    totp_issuer: str

    def queue(self, db: AsyncSession, mail: Mail) -> None:
        """Send ``mail`` once the unit of work has committed (its token is then live)."""
        on_commit(db, partial(self.mailer.send, mail))

    @staticmethod
    def link(base: str, token: str) -> str:
        """The token rides in the fragment: browsers send it to no server and no Referer."""
        return f"{base}#token={token}"

    def mail_link(
        self,
        db: AsyncSession,
        template: str,
        *,
        to: str,
        username: str,
        base: str,
        token: str,
        ttl: int,
        **values: str,
    ) -> None:
        """Queue the message ``template`` with a link to ``base`` carrying ``token``."""
        self.queue(
            db,
            mail_templates.render(
                template,
                to=to,
                username=username,
                link=self.link(base, token),
                valid_for=mail_templates.duration(ttl),
                **values,
            ),
        )


def build_account_kit(settings: Settings, *, master_key: bytes, storage: Storage) -> AccountKit:
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    server = (
        SmtpServer.from_url(
            smtp_url, starttls=settings.smtp_starttls, timeout=settings.smtp_timeout
        )
        if smtp_url
        else None
    )
    issuer = settings.issuer.rstrip("/")
    window = settings.mail_limit_window
    return AccountKit(
        mailer=Mailer(sender=settings.mail_from, server=server, attempts=settings.mail_attempts),
        verify_email_url=settings.verify_email_url or f"{issuer}/verify-email",
        password_reset_url=settings.password_reset_url or f"{issuer}/reset-password",
        verification_ttl=settings.email_verification_ttl,
        reset_ttl=settings.password_reset_ttl,
        address_quota=Quota(
            storage, name="address", limit=settings.mail_max_per_address, window=window
        ),
        reset_ip_quota=Quota(
            storage, name="reset-ip", limit=settings.password_reset_max_per_ip, window=window
        ),
        register_ip_quota=Quota(
            storage, name="register-ip", limit=settings.register_max_per_ip, window=REGISTER_WINDOW
        ),
        totp_box=SecretBox(master_key, info=TOTP_KEY_INFO),
        totp_issuer=settings.totp_issuer,
    )
