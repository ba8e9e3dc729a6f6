"""Time-based one-time passwords (RFC 6238) with pyotp, and the enrolment QR code with segno."""

from __future__ import annotations

import base64
import hmac
import io
import time

import pyotp
import segno

DIGITS = 6
PERIOD = 30
VALID_WINDOW = 1  # one step either side: clocks drift, people type slowly


def new_secret() -> str:
    """A random 160-bit base32 secret (RFC 4226's recommended length)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_code_data_uri(uri: str) -> str:
    """``uri`` as an SVG QR code in a ``data:`` URI, ready for an ``<img src>``."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def is_code(value: str) -> bool:
    """Whether ``value`` has the shape of a TOTP code (else it may be a recovery code)."""
    return len(value) == DIGITS and value.isascii() and value.isdigit()


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (within the window), or None.

    The caller refuses a step it has already accepted: that is what makes a
    code single-use within its window.
    """
    if not is_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = totp.timecode(time.time() if now is None else now)
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step  # no early exit: the same work whichever step matches
    return found
