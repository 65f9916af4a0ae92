"""OpenAI-shaped errors: one exception type carried from any stage to the HTTP surface.

Every failure a client can see is an ``ApiError``; the HTTP layer renders it as
``{"error": {"message", "type", "param", "code"}}`` with its status. Anything else that
escapes a handler is a bug and is rendered as a generic 500 of the same shape.
"""

from __future__ import annotations

from typing import Any

import orjson


class ApiError(Exception):
    """An error to return to the client in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | int | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        """The JSON object OpenAI clients expect."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())

    def sse_event(self) -> bytes:
        """The same error as a server-sent event, to end a stream that already started."""
        return b"data: " + self.body() + b"\n\n"


class UpstreamError(ApiError):
    """An upstream failure; ``retryable`` tells the caller whether another deployment may help."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool,
        reason: str,
        type: str = "upstream_error",
        code: str | int | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, type=type, code=code, param=param)
        self.retryable = retryable
        self.reason = reason
        self.retry_after = retry_after


def bad_request(
    message: str, *, param: str | None = None, code: str = "invalid_request"
) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def model_not_found(model: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def internal_error() -> ApiError:
    return ApiError(
        500,
        "The gateway failed to process the request; see its logs for the request id.",
        type="server_error",
        code="internal_error",
    )


def audit_unavailable() -> ApiError:
    return ApiError(
        503,
        "The gateway could not write the audit record of this request, so it withholds the "
        "answer; retry shortly.",
        type="server_error",
        code="audit_unavailable",
        headers={"Retry-After": "1"},
    )
