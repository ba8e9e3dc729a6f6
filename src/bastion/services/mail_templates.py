"""The messages Bastion sends, from plain-text and HTML templates beside the package.

``string.Template`` rather than a template engine: the messages have no loops or
conditions, only a few values to fill in, so an engine would be a dependency
for nothing. What a template engine would add, escaping, is done here for every
value of the HTML part, in one place.
"""

from __future__ import annotations

import html
from functools import cache
from importlib.resources import files
from string import Template

from bastion.services.mailer import Mail

SUBJECTS = {
    "verify_email": "Confirm your email address",
    "password_reset": "Reset your password",
}


@cache
def _template(name: str, kind: str) -> Template:
    source = files("bastion") / "templates" / "mail" / f"{name}.{kind}"
    return Template(source.read_text(encoding="utf-8"))


def duration(seconds: int) -> str:
    """``1800`` → "30 minutes", ``86400`` → "24 hours"."""
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def render(name: str, *, to: str, **values: str) -> Mail:
    """The message ``name`` for ``to``; every value is HTML-escaped in the HTML part."""
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    return Mail(
        to=to,
        subject=SUBJECTS[name],
        text=_template(name, "txt").substitute(values),
        html=_template(name, "html").substitute(escaped),
        purpose=name,
    )
