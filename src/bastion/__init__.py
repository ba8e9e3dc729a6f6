"""Bastion: authentication and authorization for FastAPI.

The public names, for embedding Bastion in an app of your own::

    from bastion import Bastion, Principal, Scope, Settings
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Bastion", "Principal", "Scope", "Settings", "create_app", "requires"]

if TYPE_CHECKING:
    from bastion.api.deps import requires
    from bastion.app import create_app
    from bastion.config import Settings
    from bastion.embed import Bastion, Scope
    from bastion.services.principals import Principal

# Imported on first use: ``import bastion`` (the CLI, the migrations) stays cheap.
_PUBLIC = {
    "Bastion": "bastion.embed",
    "Scope": "bastion.embed",
    "Principal": "bastion.services.principals",
    "Settings": "bastion.config",
    "create_app": "bastion.app",
    "requires": "bastion.api.deps",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
