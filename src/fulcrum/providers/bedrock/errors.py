"""Bedrock errors → OpenAI-style errors with a retryable flag for the router.

The exception name comes from ``x-amzn-ErrorType`` (``Name:namespace``), else the body's
``__type``/``code``; the message from the body's ``message``/``Message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from fulcrum.api.errors import UpstreamError


class ErrorRule(NamedTuple):
    status: int
    retryable: bool
    type: str


RULES: dict[str, ErrorRule] = {
    "ThrottlingException": ErrorRule(429, True, "rate_limit_error"),
    "ServiceQuotaExceededException": ErrorRule(429, True, "rate_limit_error"),
    "ModelNotReadyException": ErrorRule(503, True, "upstream_error"),
    "ServiceUnavailableException": ErrorRule(503, True, "upstream_error"),
    "InternalServerException": ErrorRule(500, True, "upstream_error"),
    "ModelTimeoutException": ErrorRule(504, True, "upstream_error"),
    "ValidationException": ErrorRule(400, False, "invalid_request_error"),
    "AccessDeniedException": ErrorRule(403, False, "permission_error"),
    "UnrecognizedClientException": ErrorRule(403, False, "permission_error"),
    "InvalidSignatureException": ErrorRule(403, False, "permission_error"),
    "ExpiredTokenException": ErrorRule(403, False, "permission_error"),
    "ResourceNotFoundException": ErrorRule(404, False, "invalid_request_error"),
    "ModelErrorException": ErrorRule(424, False, "upstream_error"),
    "ModelStreamErrorException": ErrorRule(424, False, "upstream_error"),
}


def exception_name(value: str | None) -> str | None:
    """``ThrottlingException:http://…`` or ``throttlingException`` → ``ThrottlingException``."""
    if not value:
        return None
    name = value.split(":", 1)[0].split("#")[-1].strip()
    return name[:1].upper() + name[1:] if name else None


def bedrock_error(
    deployment: str,
    name: str | None,
    message: str | None,
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> UpstreamError:
    """The UpstreamError for a Bedrock exception (HTTP error or event-stream exception)."""
    rule = RULES.get(name or "")
    if rule is None:
        upstream_status = status or 502
        retryable = upstream_status >= 500 or upstream_status == 429
        rule = ErrorRule(
            502 if upstream_status >= 500 else upstream_status, retryable, "upstream_error"
        )
    text = message or f"Bedrock answered {name or f'HTTP {status}'}."
    return UpstreamError(
        rule.status,
        f"{text} (Bedrock {name or status}, deployment `{deployment}`)",
        retryable=rule.retryable,
        reason=name or f"http_{status}",
        type=rule.type,
        code=name,
        retry_after=retry_after,
    )


def error_from_response(
    deployment: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    name = exception_name(headers.get("x-amzn-ErrorType"))
    message: str | None = None
    if isinstance(parsed, dict):
        name = name or exception_name(parsed.get("__type") or parsed.get("code"))
        raw_message = parsed.get("message") or parsed.get("Message")
        message = str(raw_message) if raw_message else None
    elif body:
        message = body.decode("utf-8", "replace")[:500]
    retry_after = None
    hint = headers.get("Retry-After") or headers.get("x-amzn-retry-after")
    if hint:
        try:
            retry_after = max(0.0, float(hint))
        except ValueError:
            retry_after = None
    return bedrock_error(deployment, name, message, status=status, retry_after=retry_after)
