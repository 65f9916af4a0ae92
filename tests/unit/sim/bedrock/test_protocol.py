"""Converse and Titan request validation: AWS's front-end checks and Bedrock's own rules."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from fulcrum.sim.bedrock import tokenizer as tok
from fulcrum.sim.bedrock.catalog import HAIKU, LLAMA, TITAN_EMBED, default_catalog
from fulcrum.sim.bedrock.errors import BedrockError
from fulcrum.sim.bedrock.protocol import (
    ALTERNATE,
    INPUT_TOO_LONG,
    START_WITH_USER,
    TOOL_CONFIG_REQUIRED,
    WRONG_MODEL_KIND,
    ConverseRequest,
    parse_converse,
    parse_titan_embedding,
)

CATALOG = default_catalog()
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather for a city",
                "inputSchema": {
                    "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                },
            }
        }
    ]
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"text": text}]}


def _parse(body: dict[str, Any], model_id: str = HAIKU) -> ConverseRequest:
    model = CATALOG.model(model_id)
    return parse_converse(orjson.dumps(body), model, model.model_id)


def _error(body: dict[str, Any] | bytes, model_id: str = HAIKU) -> BedrockError:
    model = CATALOG.model(model_id)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(BedrockError) as info:
        parse_converse(raw, model, model.model_id)
    return info.value


def test_simple_request_counts_tokens() -> None:
    req = _parse({"messages": [_user("Hello, world!")], "system": [{"text": "Be brief."}]})
    expected = tok.MESSAGE_OVERHEAD + 4 + tok.SYSTEM_OVERHEAD + 3 + tok.GENERATION_PROMPT_TOKENS
    assert req.input_tokens == expected
    assert req.tools == () and req.tool_choice is None
    assert req.last_user_text == "Hello, world!"
    assert req.cache_points == []


def test_seed_ignores_limits_but_not_content_or_sampling() -> None:
    base = {"messages": [_user("hi")]}
    seed = _parse(base).seed
    assert (
        _parse({**base, "inferenceConfig": {"maxTokens": 5, "stopSequences": ["x"]}}).seed == seed
    )
    assert _parse({**base, "inferenceConfig": {"temperature": 0.5}}).seed != seed
    assert _parse({"messages": [_user("hi!")]}).seed != seed
    model = CATALOG.model(HAIKU)
    raw = orjson.dumps(base)
    assert parse_converse(raw, model, "other-model").seed != seed


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], START_WITH_USER),
        ([_assistant("hi")], START_WITH_USER),
        ([_user("a"), _user("b")], ALTERNATE),
        ([_user("a"), _assistant("b"), _assistant("c")], ALTERNATE),
        ([_user("a"), {"role": "system", "content": [{"text": "x"}]}], ALTERNATE),
    ],
)
def test_conversation_shape_rules(messages: list[dict[str, Any]], message: str) -> None:
    error = _error({"messages": messages})
    assert (error.name, error.status, error.message) == ("ValidationException", 400, message)


def test_missing_messages_must_start_with_user() -> None:
    assert _error({}).message == START_WITH_USER


def test_empty_content_and_blank_text() -> None:
    error = _error({"messages": [_user("a"), {"role": "assistant", "content": []}]})
    assert error.message.startswith(
        "The content field in the Message object at messages.1 is empty"
    )
    error = _error({"messages": [{"role": "user", "content": [{"text": "ok"}, {"text": "  "}]}]})
    assert error.message.startswith(
        "The text field in the ContentBlock object at messages.0.content.1 is blank"
    )


def _tool_turns(use_ids: list[str], result_ids: list[str]) -> list[dict[str, Any]]:
    return [
        _user("weather?"),
        {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": i, "name": "get_weather", "input": {"city": "x"}}}
                for i in use_ids
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": i, "content": [{"json": {"temp": 20}}]}}
                for i in result_ids
            ]
            or [{"text": "never mind"}],
        },
    ]


def test_tool_results_must_answer_the_previous_tool_uses() -> None:
    ok = _parse({"messages": _tool_turns(["a", "b"], ["b", "a"]), "toolConfig": TOOLS})
    assert ok.answers_tool_result
    error = _error({"messages": _tool_turns(["a"], ["a", "b"]), "toolConfig": TOOLS})
    assert error.message == (
        "The number of toolResult blocks at messages.2.content exceeds the number of toolUse "
        "blocks of previous turn."
    )
    error = _error({"messages": _tool_turns(["a", "b"], ["a"]), "toolConfig": TOOLS})
    assert (
        error.message == "Expected toolResult blocks at messages.2.content for the following Ids: b"
    )
    error = _error({"messages": _tool_turns(["a"], ["zzz"]), "toolConfig": TOOLS})
    assert error.message.endswith("following Ids: a")
    error = _error({"messages": _tool_turns(["a"], []), "toolConfig": TOOLS})
    assert error.message.endswith("following Ids: a")


def test_tool_blocks_need_tool_config() -> None:
    assert _error({"messages": _tool_turns(["a"], ["a"])}).message == TOOL_CONFIG_REQUIRED


def test_error_tool_result_needs_content() -> None:
    turns = _tool_turns(["a"], ["a"])
    turns[2]["content"][0]["toolResult"].update(content=[], status="error")
    error = _error({"messages": turns, "toolConfig": TOOLS})
    assert "cannot be empty when status value is error" in error.message


def test_front_end_constraints_are_collected_together() -> None:
    error = _error(
        {
            "messages": [{"role": "robot", "content": [{"text": "x", "image": {}}]}],
            "inferenceConfig": {"maxTokens": 0, "temperature": 1.5},
        }
    )
    assert error.name == "ValidationException"
    assert error.message.startswith("4 validation errors detected: ")
    assert (
        "Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1"
    ) in error.message
    assert "Value '1.5' at 'inferenceConfig.temperature'" in error.message
    assert "Value 'robot' at 'messages.1.member.role'" in error.message
    assert "'messages.1.member.content.1.member' failed to satisfy constraint" in error.message


def test_tool_name_pattern_and_missing_members() -> None:
    tools = {"tools": [{"toolSpec": {"name": "bad name!", "inputSchema": {"json": {}}}}]}
    error = _error({"messages": [_user("x")], "toolConfig": tools})
    assert "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+" in error.message
    error = _error({"messages": [{"role": "user"}]})
    assert error.message == (
        "1 validation error detected: Value null at 'messages.1.member.content' failed to "
        "satisfy constraint: Member must not be null"
    )


def test_wrong_json_types_are_serialization_errors() -> None:
    assert _error(b"{not json").name == "SerializationException"
    assert _error(b"[]").name == "SerializationException"
    error = _error({"messages": "hello"})
    assert (error.name, error.status) == ("SerializationException", 400)
    assert "messages" in error.message


def test_max_tokens_limit_and_context_window() -> None:
    error = _error({"messages": [_user("x")], "inferenceConfig": {"maxTokens": 4097}})
    assert error.message == (
        "The maximum tokens you requested exceeds the model limit of 4096. "
        "Try again with a maximum tokens value that is lower than 4096."
    )
    long_text = "word " * 130_000
    assert _error({"messages": [_user(long_text)]}, LLAMA).message == INPUT_TOO_LONG


def test_model_capabilities() -> None:
    image = {"image": {"format": "png", "source": {"bytes": PNG}}}
    req = _parse({"messages": [{"role": "user", "content": [{"text": "what?"}, image]}]})
    assert req.input_tokens == tok.MESSAGE_OVERHEAD + 2 + tok.MEDIA_TOKENS + 3
    error = _error({"messages": [{"role": "user", "content": [image]}]}, LLAMA)
    assert "doesn't support image" in error.message
    error = _error(
        {"messages": [_user("x")], "toolConfig": {**TOOLS, "toolChoice": {"any": {}}}}, LLAMA
    )
    assert error.message == (
        "This model doesn't support the toolConfig.toolChoice.any field. "
        "Remove toolConfig.toolChoice.any and try again."
    )
    assert _error({"messages": [_user("x")]}, TITAN_EMBED).message == WRONG_MODEL_KIND


def test_invalid_image_bytes() -> None:
    image = {"image": {"format": "tiff", "source": {"bytes": "!!!"}}}
    error = _error({"messages": [{"role": "user", "content": [image]}]})
    assert error.name == "SerializationException"
    image = {"image": {"format": "tiff", "source": {"bytes": PNG}}}
    error = _error({"messages": [{"role": "user", "content": [image]}]})
    assert "Member must satisfy enum value set: [png, jpeg, gif, webp]" in error.message


def test_tool_choice_rules() -> None:
    req = _parse(
        {
            "messages": [_user("x")],
            "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "get_weather"}}},
        }
    )
    assert (req.tool_choice, req.tool_choice_name) == ("tool", "get_weather")
    error = _error(
        {
            "messages": [_user("x")],
            "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "nope"}}},
        }
    )
    assert "nope" in error.message
    error = _error({"messages": [_user("x")], "toolConfig": {"tools": TOOLS["tools"] * 2}})
    assert "Tool names must be unique" in error.message
    error = _error({"messages": [_user("x")], "toolConfig": {"tools": []}})
    assert "'toolConfig.tools' failed to satisfy constraint" in error.message


def test_cache_points_hash_the_prefix_and_count_its_tokens() -> None:
    system = [{"text": "A long shared system prompt."}, {"cachePoint": {"type": "default"}}]
    first = _parse({"system": system, "messages": [_user("question one")]})
    second = _parse({"system": system, "messages": [_user("another question")]})
    (point,) = first.cache_points
    assert point.tokens == tok.SYSTEM_OVERHEAD + tok.count_tokens("A long shared system prompt.")
    assert second.cache_points[0].key == point.key
    other = _parse(
        {
            "system": [{"text": "Different."}, {"cachePoint": {"type": "default"}}],
            "messages": [_user("q")],
        }
    )
    assert other.cache_points[0].key != point.key
    hour = _parse(
        {
            "system": [{"text": "x"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
            "messages": [_user("q")],
        }
    )
    assert hour.cache_points[0].ttl_s == 3600.0
    five = [{"text": f"part {i}"} for i in range(5)]
    blocks: list[dict[str, Any]] = []
    for part in five:
        blocks += [part, {"cachePoint": {"type": "default"}}]
    error = _error({"system": blocks, "messages": [_user("q")]})
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in error.message


def test_echoed_members() -> None:
    req = _parse({"messages": [_user("x")], "performanceConfig": {"latency": "optimized"}})
    assert req.echo == {"performanceConfig": {"latency": "optimized"}}


# ----------------------------------------------------------------------------- titan


def _titan(body: Any) -> Any:
    return parse_titan_embedding(orjson.dumps(body), CATALOG.model(TITAN_EMBED))


def test_titan_defaults_and_options() -> None:
    req = _titan({"inputText": "hello world"})
    assert (req.text, req.dimensions, req.normalize, req.types) == (
        "hello world",
        1024,
        True,
        ("float",),
    )
    req = _titan(
        {
            "inputText": "x",
            "dimensions": 256,
            "normalize": False,
            "embeddingTypes": ["binary", "float"],
        }
    )
    assert (req.dimensions, req.normalize, req.types) == (256, False, ("binary", "float"))


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "#: required key [inputText] not found"),
        ({"inputText": "x", "foo": 1}, "#: extraneous key [foo] is not permitted"),
        ({"inputText": "x", "dimensions": 100}, "#/dimensions: 100 is not a valid enum value"),
        ({"inputText": 5}, "#/inputText: expected type: String, found: Number"),
        (
            {"inputText": "x", "normalize": "yes"},
            "#/normalize: expected type: Boolean, found: String",
        ),
        ({"inputText": ""}, "#/inputText: expected minLength: 1, actual: 0"),
        (
            {"inputText": "x", "embeddingTypes": ["int8"]},
            "#/embeddingTypes/0: int8 is not a valid enum value",
        ),
    ],
)
def test_titan_schema_violations(body: dict[str, Any], detail: str) -> None:
    with pytest.raises(BedrockError) as info:
        _titan(body)
    assert info.value.message == (
        f"Malformed input request: {detail}, please reformat your input and try again."
    )


def test_titan_several_violations_and_too_long_input() -> None:
    with pytest.raises(BedrockError, match="2 schema violations found"):
        _titan({"dimensions": 3})
    with pytest.raises(BedrockError, match=r"Too many input tokens\. Max input tokens: 8192"):
        _titan({"inputText": "w " * 9000})
