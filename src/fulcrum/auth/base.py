"""The authentication stage's interface and the pieces every authenticator shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from fulcrum.api.errors import ApiError
from fulcrum.auth.principal import Principal


class Authenticator(Protocol):
    """Request headers → Principal, or a 401/403 ApiError with a message that leaks nothing."""

    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


def presented_credential(headers: Mapping[str, str]) -> str | None:
    """The credential from ``Authorization: Bearer …`` or ``x-api-key``; None when absent."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and credential.strip():
            return credential.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() or None if key else None


def unauthorized(message: str, code: str) -> ApiError:
    """A 401 in OpenAI's shape; ``code`` is also the reason label of the failure metric."""
    return ApiError(401, message, code=code)


def missing_credential() -> ApiError:
    return unauthorized(
        "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
        "missing_api_key",
    )


def invalid_key() -> ApiError:
    return unauthorized("Incorrect API key provided.", "invalid_api_key")
