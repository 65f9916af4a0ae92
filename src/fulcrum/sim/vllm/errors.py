"""vLLM's error responses: one exception type, one body shape.

Current vLLM (``vllm/entrypoints/openai/engine/protocol.py``: ``ErrorResponse``/``ErrorInfo``,
built by ``OpenAIServing.create_error_response``) answers errors with
``{"error": {"message": str, "type": str, "param": str | null, "code": int}}`` where ``type`` is
an exception-like name (``BadRequestError``, ``NotFoundError``, ...) and ``code`` repeats the
HTTP status. Older releases used ``{"object": "error", ...}``; this emulator speaks the current
shape only.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json"


def error_type_for(status: int) -> str:
    """vLLM-style error type for an HTTP status: 400 → BadRequestError, 503 → ..."""
    special = {
        400: "BadRequestError",
        404: "NotFoundError",
        500: "InternalServerError",
        501: "NotImplementedError",
    }
    if status in special:
        return special[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    name = "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())
    return name if name.endswith("Error") else name + "Error"


class ApiError(Exception):
    """A request the emulator answers with a vLLM error body instead of a result."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        err_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.err_type = err_type or error_type_for(status)


def error_body(
    message: str, status: int, param: str | None = None, err_type: str | None = None
) -> bytes:
    """The JSON bytes of a vLLM ``ErrorResponse``."""
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": err_type or error_type_for(status),
                "param": param,
                "code": status,
            }
        }
    )


def error_response(exc: ApiError) -> web.Response:
    """An aiohttp response carrying ``exc`` in vLLM's error shape."""
    return web.Response(
        status=exc.status,
        body=error_body(exc.message, exc.status, exc.param, exc.err_type),
        content_type=JSON_CONTENT_TYPE,
    )
