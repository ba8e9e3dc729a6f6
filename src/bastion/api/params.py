"""Typed path and query parameters: bounded, and free of control characters."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator

from bastion.api.schemas import no_controls

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NO_SUCH_ID = ""  # matches no row: the lookup then answers 404 like any unknown id


def _id_or_nothing(value: str) -> str:
    """Ids are opaque, but ours are UUIDs: anything else names no object (404, not 422)."""
    return value if _ID.fullmatch(value) else NO_SUCH_ID


ObjectId = Annotated[str, Path(), AfterValidator(_id_or_nothing)]
CleanText = Annotated[str, AfterValidator(no_controls)]
SearchText = Annotated[CleanText | None, Query(max_length=100)]
IdFilter = Annotated[CleanText | None, Query(max_length=64)]
EventFilter = Annotated[CleanText | None, Query(max_length=40)]
