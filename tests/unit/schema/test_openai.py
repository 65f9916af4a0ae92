"""Request validation: the fields the gateway reads are checked, with OpenAI-style errors."""

from __future__ import annotations

import orjson
import pytest

from fulcrum.api.errors import ApiError
from fulcrum.schema.openai import Endpoint, parse_request

MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_chat_request_is_parsed() -> None:
    request = parse_request(
        Endpoint.CHAT,
        body(model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}),
    )
    assert request.model == "m"
    assert request.stream is True
    assert request.client_wants_usage is True
    assert request.body["messages"] == MESSAGES


def test_stream_without_options_does_not_want_usage() -> None:
    request = parse_request(Endpoint.CHAT, body(model="m", messages=MESSAGES, stream=True))
    assert request.stream and not request.client_wants_usage


@pytest.mark.parametrize(
    ("endpoint", "raw", "param", "code"),
    [
        (Endpoint.CHAT, b"{not json", None, "invalid_json"),
        (Endpoint.CHAT, b"[1, 2]", None, "invalid_json"),
        (Endpoint.CHAT, body(messages=MESSAGES), "model", "invalid_request"),
        (Endpoint.CHAT, body(model=3, messages=MESSAGES), "model", "invalid_request"),
        (Endpoint.CHAT, body(model="m"), "messages", "invalid_request"),
        (Endpoint.CHAT, body(model="m", messages="hi"), "messages", "invalid_request"),
        (
            Endpoint.CHAT,
            body(model="m", messages=[{"role": "robot"}]),
            "messages[0].role",
            "invalid_request",
        ),
        (
            Endpoint.CHAT,
            body(model="m", messages=MESSAGES, stream="yes"),
            "stream",
            "invalid_request",
        ),
        (
            Endpoint.CHAT,
            body(model="m", messages=MESSAGES, max_tokens=0),
            "max_tokens",
            "invalid_request",
        ),
        (
            Endpoint.CHAT,
            body(model="m", messages=MESSAGES, temperature=3),
            "temperature",
            "invalid_request",
        ),
        (
            Endpoint.CHAT,
            body(model="m", messages=MESSAGES, stream_options={"include_usage": True}),
            "stream_options",
            "invalid_request",
        ),
        (Endpoint.COMPLETIONS, body(model="m"), "prompt", "invalid_request"),
        (Endpoint.COMPLETIONS, body(model="m", prompt=[]), "prompt", "invalid_request"),
        (Endpoint.EMBEDDINGS, body(model="m", input=5), "input", "invalid_request"),
    ],
)
def test_invalid_requests_are_400(
    endpoint: Endpoint, raw: bytes, param: str | None, code: str
) -> None:
    with pytest.raises(ApiError) as info:
        parse_request(endpoint, raw)
    error = info.value
    assert error.status == 400
    assert error.param == param
    assert error.code == code
    assert set(error.payload()["error"]) == {"message", "type", "param", "code"}


def test_completions_and_embeddings_accept_arrays() -> None:
    assert parse_request(Endpoint.COMPLETIONS, body(model="m", prompt=["a", "b"])).model == "m"
    assert parse_request(Endpoint.EMBEDDINGS, body(model="m", input=[[1, 2, 3]])).stream is False
