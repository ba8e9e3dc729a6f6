"""The password policy: length, not the username or email, not common, not easy to guess.

Two checks against guessing, each bounded in cost:
- the published list in ``security/data`` (origin in its SOURCE file), a set lookup;
- zxcvbn's estimate of the guesses an attacker needs (its own lists of common
  passwords, words and names, l33t spellings, keyboard walks, sequences,
  repeats, dates and years, and the user's own name and email), over the first
  :data:`ESTIMATED_PREFIX` characters only: its cost grows steeply with length,
  and a password whose first 32 characters are hard to guess is not easy.
The estimate takes milliseconds, so the callers run the policy in a worker
thread, off the event loop, just before the hash (``PasswordHasher.hash(..., check=...)``).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

from bastion.errors import PolicyViolation

MIN_LENGTH = 8
MAX_LENGTH = 256
MIN_GUESSES = 10**8  # what zxcvbn gives 8 random characters; "Summer2024!" is 3 * 10**7
ESTIMATED_PREFIX = 32  # characters zxcvbn sees: at most ~10 ms, where 72 take ~350 ms


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The published list shipped in ``security/data`` (origin in its SOURCE file)."""
    text = (files("bastion.security") / "data" / "common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def estimate(password: str, *, username: str, email: str) -> dict[str, Any]:
    """zxcvbn's analysis of the password's first :data:`ESTIMATED_PREFIX` characters."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # imported on first use: ~0.25 s

    hints = [username, email, email.partition("@")[0]]
    result: dict[str, Any] = zxcvbn(password[:ESTIMATED_PREFIX], user_inputs=hints)
    return result


def check_password(password: str, *, username: str, email: str) -> None:
    """Raise :class:`PolicyViolation` if ``password`` may not be used."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PolicyViolation(f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    folded = password.casefold()
    if folded in {username.casefold(), email.casefold()}:
        raise PolicyViolation("password must differ from the username and email")
    if folded in common_passwords():
        raise PolicyViolation("password is too common; choose another")
    analysis = estimate(password, username=username, email=email)
    if float(analysis["guesses"]) < MIN_GUESSES:
        warning = analysis["feedback"].get("warning") or "it follows a common pattern"
        raise PolicyViolation(
            f"password is too easy to guess ({warning.rstrip('.').lower()}); "
            "a few unrelated words make a strong one"
        )
