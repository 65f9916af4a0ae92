"""OpenAI request wire types: parse and check only what the gateway must read.

The gateway forwards the body to an OpenAI-compatible upstream almost verbatim, so it
validates the fields it relies on (model, messages/prompt/input, stream flags, numeric
limits) and leaves the rest to the upstream, which reports its own 400s (passed through).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.api.errors import ApiError, bad_request


class Endpoint(enum.Enum):
    """The inference endpoints, by their path below ``/v1``."""

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(slots=True)
class InferenceRequest:
    """A validated request: the fields the pipeline reads, plus the body to forward."""

    endpoint: Endpoint
    model: str
    body: dict[str, Any]
    stream: bool
    client_wants_usage: bool


def decode_json(raw: bytes) -> dict[str, Any]:
    """Parse the body; anything but a JSON object is a 400."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400,
            f"We could not parse the JSON body of your request: {exc}",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def parse_request(endpoint: Endpoint, raw: bytes) -> InferenceRequest:
    """Decode and check a request body for ``endpoint``."""
    body = decode_json(raw)
    model = body.get("model")
    if model is None:
        raise bad_request("you must provide a model parameter", param="model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' must be a non-empty string", param="model")

    if endpoint is Endpoint.CHAT:
        _check_messages(body.get("messages"))
    elif endpoint is Endpoint.COMPLETIONS:
        _check_prompt(body.get("prompt"))
    else:
        _check_embedding_input(body.get("input"))

    stream = False
    wants_usage = False
    if endpoint is not Endpoint.EMBEDDINGS:
        stream = _optional_bool(body, "stream")
        options = body.get("stream_options")
        if options is not None:
            if not isinstance(options, dict):
                raise bad_request("'stream_options' must be an object", param="stream_options")
            if not stream:
                raise bad_request(
                    "'stream_options' is only allowed when 'stream' is true",
                    param="stream_options",
                )
            wants_usage = _optional_bool(options, "include_usage", "stream_options.include_usage")
        _check_limits(body)
    return InferenceRequest(endpoint, model, body, stream, wants_usage)


def _optional_bool(body: dict[str, Any], key: str, param: str | None = None) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"'{param or key}' must be a boolean", param=param or key)
    return value


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise bad_request("you must provide a messages parameter", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object", param=f"messages[{index}]")
        role = message.get("role")
        if role not in _ROLES:
            raise bad_request(
                f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))}",
                param=f"messages[{index}].role",
            )


def _check_prompt(prompt: Any) -> None:
    if prompt is None:
        raise bad_request("you must provide a prompt parameter", param="prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt:
        return  # list of strings, of token ids, or of token-id lists: the upstream checks
    raise bad_request("'prompt' must be a string or a non-empty array", param="prompt")


def _check_embedding_input(value: Any) -> None:
    if value is None:
        raise bad_request("you must provide an input parameter", param="input")
    if isinstance(value, str) or (isinstance(value, list) and value):
        return
    raise bad_request("'input' must be a string or a non-empty array", param="input")


def _check_limits(body: dict[str, Any]) -> None:
    for key in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise bad_request(f"'{key}' must be a positive integer", param=key)
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = body.get(key)
        if value is None:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or not low <= value <= high:
            raise bad_request(f"'{key}' must be a number between {low} and {high}", param=key)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str | list):
        raise bad_request("'stop' must be a string or an array of strings", param="stop")


def models_list(aliases: list[str], created: int) -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    return {"object": "list", "data": [model_card(alias, created) for alias in aliases]}


def model_card(alias: str, created: int) -> dict[str, Any]:
    """One entry of ``GET /v1/models``; also the body of ``GET /v1/models/{id}``."""
    return {"id": alias, "object": "model", "created": created, "owned_by": "fulcrum"}
