"""Bastion: authentication and authorization for FastAPI."""

__version__ = "0.1.0"
