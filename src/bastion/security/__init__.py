"""Cryptography: passwords, signing keys, access tokens and opaque credentials."""
