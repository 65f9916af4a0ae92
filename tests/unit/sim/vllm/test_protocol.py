"""Request validation mirrors vLLM's 400s."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.sim.vllm.errors import ApiError, error_type_for
from fulcrum.sim.vllm.protocol import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    parse_chat,
    parse_completion,
    parse_embedding,
    parse_json_object,
    parse_tokenize,
)

USER = [{"role": "user", "content": "hi"}]
TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": {}}},
    {"type": "function", "function": {"name": "b", "parameters": {}}},
]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"messages": USER, **fields}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "messages: Field required"),
        ({"messages": "hi"}, "valid list"),
        (_chat(stream_options={"include_usage": True}), "Stream options"),
        (_chat(top_logprobs=2), "`logprobs` must be set to true"),
        (_chat(logprobs=True, top_logprobs=21), "top_logprobs"),
        (_chat(max_tokens=0), "max_tokens must be at least 1"),
        (_chat(n=0), "n must be at least 1"),
        (_chat(stop=5), "stop"),
        (_chat(tool_choice="required"), "`tools` must be set"),
        (_chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "z"}}), "'z'"),
        (_chat(response_format={"type": "xml"}), "response_format"),
        (_chat(max_tokens="ten"), "valid integer"),
    ],
)
def test_invalid_chat_bodies_are_400(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError, match=message) as info:
        parse_chat(body, auto_tool_choice=True)
    assert info.value.status == 400
    assert info.value.err_type == "BadRequestError"


def test_auto_tool_choice_is_rejected_when_disabled_like_vllm() -> None:
    with pytest.raises(ApiError, match="--enable-auto-tool-choice"):
        parse_chat(_chat(tools=TOOLS), auto_tool_choice=False)
    assert parse_chat(_chat(tools=TOOLS), auto_tool_choice=True).forced_tool is None


def test_tool_choice_required_forces_the_first_tool_and_named_forces_that_one() -> None:
    required = parse_chat(_chat(tools=TOOLS, tool_choice="required"), True).forced_tool
    assert required is not None and (required.name, required.named) == ("a", False)
    choice = {"type": "function", "function": {"name": "b"}}
    named = parse_chat(_chat(tools=TOOLS, tool_choice=choice), True).forced_tool
    assert named is not None and (named.name, named.named) == ("b", True)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    parsed = parse_chat(_chat(max_tokens=5, max_completion_tokens=9), True)
    assert parsed.sampling.max_tokens == 9


def test_stream_options_default_include_usage_true_as_in_vllm() -> None:
    parsed = parse_chat(_chat(stream=True, stream_options={}), True)
    assert parsed.sampling.include_usage
    assert not parse_chat(_chat(stream=True), True).sampling.include_usage


def test_completion_prompts_and_default_max_tokens() -> None:
    parsed = parse_completion({"prompt": ["a", "b"]})
    assert parsed.prompts == ["a", "b"]
    assert parsed.sampling.max_tokens == COMPLETION_DEFAULT_MAX_TOKENS
    assert parse_completion({"prompt": [1, 2, 3]}).prompts == [[1, 2, 3]]
    with pytest.raises(ApiError, match="prompt"):
        parse_completion({"prompt": []})
    with pytest.raises(ApiError, match="greater than max allowed"):
        parse_completion({"prompt": "a", "logprobs": 21})


def test_embedding_validation() -> None:
    assert parse_embedding({"input": "x"}).encoding_format == "float"
    with pytest.raises(ApiError, match="encoding_format"):
        parse_embedding({"input": "x", "encoding_format": "hex"})
    with pytest.raises(ApiError, match="input"):
        parse_embedding({})


def test_tokenize_needs_prompt_or_messages() -> None:
    with pytest.raises(ApiError):
        parse_tokenize({})
    assert parse_tokenize({"prompt": "x"}).add_special_tokens
    assert not parse_tokenize({"messages": USER}).add_special_tokens


@pytest.mark.parametrize("body", [b"{bad", b"[1, 2]", b""])
def test_body_must_be_a_json_object(body: bytes) -> None:
    with pytest.raises(ApiError):
        parse_json_object(body)


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "BadRequestError"),
        (404, "NotFoundError"),
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
        (429, "TooManyRequestsError"),
    ],
)
def test_error_types_follow_vllm_naming(status: int, name: str) -> None:
    assert error_type_for(status) == name
