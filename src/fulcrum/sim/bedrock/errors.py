"""AWS restJson1 errors as Bedrock Runtime sends them.

An error is an HTTP status, an ``x-amzn-ErrorType`` header (``Name:<coral namespace>``; botocore
keeps the part before ``:``), an ``x-amzn-RequestId`` header and a JSON body
``{"message": "..."}``. The statuses below are the ``httpStatusCode`` traits of the error shapes
in botocore's service model (``botocore/data/bedrock-runtime/2023-09-30/service-2.json``);
``tests/unit/sim/bedrock/test_errors.py`` checks them against the installed model.

Errors raised by AWS's front end rather than by Bedrock (signature checks, unknown routes,
unparsable bodies) carry the ``com.amazon.coral.service`` namespace, as AWS sends them.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

BEDROCK_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CORAL_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
JSON_CONTENT_TYPE = "application/json"

ERROR_STATUS: dict[str, int] = {
    # Modelled by the service (service-2.json ``error.httpStatusCode``).
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "ModelStreamErrorException": 424,
    "ModelTimeoutException": 408,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 400,
    "ServiceUnavailableException": 503,
    "ThrottlingException": 429,
    "ValidationException": 400,
    # AWS front-end errors (not in the service model; statuses as AWS answers them).
    "IncompleteSignatureException": 403,
    "InvalidSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "UnrecognizedClientException": 403,
    "SerializationException": 400,
    "UnknownOperationException": 404,
}
"""Every error type the emulator can answer with, and its HTTP status."""

MODELED_ERRORS: frozenset[str] = frozenset(
    {
        "AccessDeniedException",
        "InternalServerException",
        "ModelErrorException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "ServiceUnavailableException",
        "ThrottlingException",
        "ValidationException",
    }
)
"""Errors of the Converse/ConverseStream/InvokeModel operations (what a fault may inject)."""

FRONT_END_ERRORS: frozenset[str] = frozenset(
    {
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "UnrecognizedClientException",
        "SerializationException",
        "UnknownOperationException",
    }
)

STREAM_EXCEPTIONS: dict[str, str] = {
    "internalServerException": "InternalServerException",
    "modelStreamErrorException": "ModelStreamErrorException",
    "validationException": "ValidationException",
    "throttlingException": "ThrottlingException",
    "serviceUnavailableException": "ServiceUnavailableException",
}
"""Exception members of the ``ConverseStreamOutput`` union (``:exception-type`` values)."""

DEFAULT_MESSAGES: dict[str, str] = {
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "InternalServerException": (
        "The system encountered an unexpected error during processing. Try your request again."
    ),
    "ModelErrorException": "The model encountered an error while processing the request.",
    "ModelNotReadyException": (
        "Model is not ready to serve inference requests. The model is being loaded; "
        "try again later."
    ),
    "ModelStreamErrorException": "The model encountered an error while streaming the response.",
    "ModelTimeoutException": (
        "Model has timed out in processing the request. Try your request again."
    ),
    "ResourceNotFoundException": "The specified resource ARN was not found.",
    "ServiceQuotaExceededException": (
        "Your request exceeds the service quota for your account. "
        "You can resubmit your request later."
    ),
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ValidationException": "The request failed validation.",
}
"""Messages of injected errors when the fault does not give one."""

TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."


def new_request_id() -> str:
    """A request id in AWS's format (a UUID)."""
    return str(uuid.uuid4())


class BedrockError(Exception):
    """A request the emulator answers with an AWS error instead of a result."""

    def __init__(self, name: str, message: str, **extra: Any) -> None:
        super().__init__(f"{name}: {message}")
        if name not in ERROR_STATUS:
            raise ValueError(f"unknown error type {name!r}")
        self.name = name
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.name]

    def body(self) -> bytes:
        return orjson.dumps({"message": self.message, **self.extra})


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", message)


def error_type_header(name: str) -> str:
    """The ``x-amzn-ErrorType`` value AWS sends for ``name``."""
    namespace = CORAL_NAMESPACE if name in FRONT_END_ERRORS else BEDROCK_NAMESPACE
    return f"{name}:{namespace}"


def error_response(exc: BedrockError, request_id: str) -> web.Response:
    """An aiohttp response carrying ``exc`` exactly as AWS frames it."""
    if exc.name == "UnknownOperationException":
        # AWS's front end answers unknown routes with an empty XML element.
        return web.Response(
            status=exc.status,
            body=b"<UnknownOperationException/>",
            headers={
                "x-amzn-RequestId": request_id,
                "x-amzn-ErrorType": error_type_header(exc.name),
                "Content-Type": "application/xml",
            },
        )
    return web.Response(
        status=exc.status,
        body=exc.body(),
        headers={
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": error_type_header(exc.name),
            "Content-Type": JSON_CONTENT_TYPE,
        },
    )


def stream_exception_name(name: str) -> str:
    """The ``:exception-type`` for ``name`` (either spelling), or ValueError."""
    if name in STREAM_EXCEPTIONS:
        return name
    lowered = name[:1].lower() + name[1:]
    if lowered in STREAM_EXCEPTIONS:
        return lowered
    known = ", ".join(sorted(STREAM_EXCEPTIONS))
    raise ValueError(f"{name!r} is not a ConverseStream exception; known: {known}")
