"""The authorization server's half of the discovery document (OIDC Discovery 1.0, RFC 8414)."""

from __future__ import annotations

from typing import Any

CLAIMS_SUPPORTED = (
    "iss", "aud", "sub", "exp", "iat", "auth_time", "nonce", "sid", "at_hash",
    "preferred_username", "name", "email",
)
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def authorization_server_metadata(issuer: str, algorithm: str) -> dict[str, Any]:
    """Endpoints and capabilities of the code flow, OIDC and client authentication."""
    return {
        "authorization_endpoint": f"{issuer}/authorize",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [algorithm],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
    }
