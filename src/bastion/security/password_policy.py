"""The password policy: length, not the username or email, not a common password."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from bastion.errors import PolicyViolation

MIN_LENGTH = 8
MAX_LENGTH = 256


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The published list shipped in ``security/data`` (origin in its SOURCE file)."""
    text = (files("bastion.security") / "data" / "common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def check_password(password: str, *, username: str, email: str) -> None:
    """Raise :class:`PolicyViolation` if ``password`` may not be used."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PolicyViolation(f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    folded = password.casefold()
    if folded in {username.casefold(), email.casefold()}:
        raise PolicyViolation("password must differ from the username and email")
    if folded in common_passwords():
        raise PolicyViolation("password is too common; choose another")
