"""The caller a verified access token stands for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called, with which scopes, through which session and client.

    ``claims`` holds every claim of the verified token, read-only. ``scopes``
    are the token's scopes, or on an introspected route the scopes Bastion
    grants the token right now.
    """

    subject: str
    scopes: frozenset[str]
    audience: str
    username: str | None
    session_id: str | None
    client_id: str | None
    token_id: str
    expires_at: int
    claims: Mapping[str, Any] = field(hash=False)  # read-only; left out of the hash
