"""RFC 6749 section 3.2 at the OAuth endpoints: no parameter may be included more than once."""

from __future__ import annotations

import re
from collections import Counter

from fastapi import Request

from bastion.errors import InvalidRequest

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")  # a name safe to repeat back in the error


async def single_valued(request: Request) -> None:
    """400 ``invalid_request`` when a form or query parameter is given twice.

    Otherwise one of the two values would win silently, and which one is a
    detail of the form parser that a client (or an attacker) should not rely on.
    The form is the one FastAPI has already read: Starlette keeps it.
    """
    form = await request.form()
    for params in (request.query_params, form):
        counts = Counter(name for name, _ in params.multi_items())
        repeated = sorted(name for name, n in counts.items() if n > 1)
        if repeated:
            named = [name for name in repeated if _NAME.fullmatch(name)][:5]
            raise InvalidRequest("parameters may not be repeated" + (": " if named else "")
                                 + " ".join(named))
