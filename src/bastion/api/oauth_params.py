"""The OAuth endpoints' forms: read in one pass, no parameter repeated (RFC 6749 section 3.2).

``oauth_form(Model)`` is the dependency an endpoint takes its form from. It
reads the form once, refuses a parameter given twice (in the form or the
query), and validates the rest into ``Model``, whose unknown fields are
ignored. A field sent empty counts as absent, as FastAPI's ``Form()`` has
it. A malformed field is a ``RequestValidationError``, which the OAuth
endpoints answer as 400 ``invalid_request``. The route documents the body
with ``form_body(Model)``: FastAPI sees no ``Form()`` parameter to do it.

A model validated from a dict costs one pydantic call; FastAPI's form
models inspect every field's annotation on every request (about a fifth of
a login's event-loop CPU in a profile). ``read_oauth_form`` is the same read
for a route that takes no dependencies at all, as introspection does.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import ImmutableMultiDict

from bastion.errors import InvalidRequest

FormModel = TypeVar("FormModel", bound=BaseModel)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")  # a name safe to repeat back in the error


def refuse_repeated(*params: ImmutableMultiDict[str, Any]) -> None:
    """400 ``invalid_request`` when a form or query parameter is given twice.

    Otherwise one of the two values would win silently, and which one is a
    detail of the form parser that a client (or an attacker) should not rely on.
    """
    for given in params:
        counts = Counter(name for name, _ in given.multi_items())
        repeated = sorted(name for name, n in counts.items() if n > 1)
        if repeated:
            named = [name for name in repeated if _NAME.fullmatch(name)][:5]
            raise InvalidRequest("parameters may not be repeated" + (": " if named else "")
                                 + " ".join(named))


async def read_oauth_form(request: Request, model: type[FormModel]) -> FormModel:
    """``model`` read from the request's form (see the module)."""
    form = await request.form()
    refuse_repeated(request.query_params, form)
    try:
        return model.model_validate({name: value for name, value in form.items() if value != ""})
    except ValidationError as exc:
        raise RequestValidationError([
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_input=False)
        ]) from None


def oauth_form(model: type[FormModel]) -> Callable[[Request], Awaitable[FormModel]]:
    """The dependency that reads ``model`` from the request's form."""

    async def read_form(request: Request) -> FormModel:
        return await read_oauth_form(request, model)

    return read_form


def form_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` declaring ``model`` as its form-encoded request body."""
    return {"requestBody": {"required": True, "content": {
        FORM_MEDIA_TYPE: {"schema": model.model_json_schema()},
    }}}
