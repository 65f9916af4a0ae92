"""Converse responses and ConverseStream events → OpenAI chat completions and chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fulcrum.providers.base import Usage
from fulcrum.providers.bedrock.responses import StreamTranslator, converse_to_chat, finish_reason
from tests.unit.providers.bedrock._service import service_model

STOP_REASONS = service_model().shape_for("StopReason").enum
OPENAI_FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}
META = {"completion_id": "chatcmpl-test", "created": 1_700_000_000, "model": "claude"}


def converse(
    content: list[dict[str, Any]],
    stop_reason: str = "end_turn",
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": usage or {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        "metrics": {"latencyMs": 250},
    }


WEATHER_INPUT = {"city": "Paris", "units": ["c", "f"], "detail": {"hourly": True, "days": 2}}

# (id, content blocks, expected message)
MESSAGES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("text", [{"text": "Hello!"}], {"role": "assistant", "content": "Hello!"}),
    (
        "several-text-blocks-joined",
        [{"text": "Hello, "}, {"text": "world"}, {"text": "."}],
        {"role": "assistant", "content": "Hello, world."},
    ),
    (
        "tool-call-only",
        [{"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": WEATHER_INPUT}}],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "tooluse_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_INPUT},
                }
            ],
        },
    ),
    (
        "text-and-two-tool-calls",
        [
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": WEATHER_INPUT}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "get_time", "input": {}}},
        ],
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_INPUT},
                },
                {
                    "id": "tooluse_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": {}},
                },
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    [pytest.param(content, expected, id=name) for name, content, expected in MESSAGES],
)
def test_converse_to_chat_message(content: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    stop = "tool_use" if "tool_calls" in expected else "end_turn"
    completion, _ = converse_to_chat(converse(content, stop), **META)
    assert completion["id"] == "chatcmpl-test"
    assert completion["object"] == "chat.completion"
    assert completion["created"] == 1_700_000_000
    assert completion["model"] == "claude"
    [choice] = completion["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == ("tool_calls" if "tool_calls" in expected else "stop")
    message = choice["message"]
    for call in message.get("tool_calls", []):
        # OpenAI carries arguments as a JSON string: it must parse back to Bedrock's input.
        assert isinstance(call["function"]["arguments"], str)
        call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert message == expected


ISSUE_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


@pytest.mark.parametrize("stop_reason", STOP_REASONS)
def test_every_stop_reason_maps_to_an_openai_finish_reason(stop_reason: str) -> None:
    expected = ISSUE_FINISH_REASONS.get(stop_reason)
    got = finish_reason(stop_reason)
    assert got in OPENAI_FINISH_REASONS
    if expected is not None:
        assert got == expected
    completion, _ = converse_to_chat(converse([{"text": "x"}], stop_reason), **META)
    assert completion["choices"][0]["finish_reason"] == got


def test_the_issue_table_only_names_reasons_bedrock_has() -> None:
    assert set(ISSUE_FINISH_REASONS) <= set(STOP_REASONS)


def test_model_context_window_exceeded_is_length() -> None:
    assert finish_reason("model_context_window_exceeded") == "length"


# (id, Bedrock usage, expected OpenAI usage, expected Usage)
USAGES: list[tuple[str, dict[str, Any], dict[str, Any], Usage]] = [
    (
        "no-cache",
        {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
        {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        Usage(input_tokens=12, output_tokens=3, cached_tokens=0, cache_write_tokens=0),
    ),
    (
        "cache-read-and-write",
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 1535,
            "cacheReadInputTokens": 1200,
            "cacheWriteInputTokens": 320,
        },
        {
            "prompt_tokens": 1530,
            "completion_tokens": 5,
            "total_tokens": 1535,
            "prompt_tokens_details": {"cached_tokens": 1200},
        },
        Usage(input_tokens=1530, output_tokens=5, cached_tokens=1200, cache_write_tokens=320),
    ),
    (
        "cache-write-only",
        {"inputTokens": 4, "outputTokens": 2, "cacheWriteInputTokens": 2048},
        {
            "prompt_tokens": 2052,
            "completion_tokens": 2,
            "total_tokens": 2054,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
        Usage(input_tokens=2052, output_tokens=2, cached_tokens=0, cache_write_tokens=2048),
    ),
]


@pytest.mark.parametrize(
    ("bedrock", "openai", "usage"),
    [pytest.param(b, o, u, id=name) for name, b, o, u in USAGES],
)
def test_usage_with_prompt_cache(
    bedrock: dict[str, Any], openai: dict[str, Any], usage: Usage
) -> None:
    completion, got = converse_to_chat(converse([{"text": "x"}], usage=bedrock), **META)
    assert completion["usage"] == openai
    assert got == usage


# ---------------------------------------------------------------- streaming


def run(events: list[tuple[str, dict[str, Any]]]) -> tuple[StreamTranslator, list[dict[str, Any]]]:
    translator = StreamTranslator(**META)
    chunks = [chunk for name, payload in events for chunk in translator.translate(name, payload)]
    return translator, chunks


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


STREAM_USAGE = {
    "inputTokens": 20,
    "outputTokens": 7,
    "totalTokens": 127,
    "cacheReadInputTokens": 100,
}
TEXT_STREAM: list[tuple[str, dict[str, Any]]] = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " there"}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    ("messageStop", {"stopReason": "end_turn"}),
    ("metadata", {"usage": STREAM_USAGE, "metrics": {"latencyMs": 321}}),
]


def test_text_stream_chunks() -> None:
    translator, chunks = run(TEXT_STREAM)
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-test"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["created"] == 1_700_000_000
        assert chunk["model"] == "claude"
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {"content": " there"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None] * 4 + ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 7,
        "total_tokens": 127,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert translator.finish_reason == "stop"
    assert translator.usage == Usage(input_tokens=120, output_tokens=7, cached_tokens=100)
    assert len(chunks) == 6  # contentBlockStop produced nothing


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [pytest.param(reason, finish_reason(reason), id=reason) for reason in STOP_REASONS],
)
def test_stream_finish_chunk_uses_the_stop_reason(stop_reason: str, expected: str) -> None:
    translator, chunks = run([("messageStop", {"stopReason": stop_reason})])
    assert chunks == [
        {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "claude",
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": expected}],
        }
    ]
    assert translator.finish_reason == expected
    assert expected in OPENAI_FINISH_REASONS


TOOL_STREAM: list[tuple[str, dict[str, Any]]] = [
    ("messageStart", {"role": "assistant"}),
    ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
    ("contentBlockStop", {"contentBlockIndex": 0}),
    (
        "contentBlockStart",
        {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": "tooluse_w", "name": "get_weather"}},
        },
    ),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"ci'}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ty": "Pa'}}}),
    ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ris"}'}}}),
    ("contentBlockStop", {"contentBlockIndex": 1}),
    (
        "contentBlockStart",
        {
            "contentBlockIndex": 2,
            "start": {"toolUse": {"toolUseId": "tooluse_t", "name": "get_time"}},
        },
    ),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": '{"tz":'}}}),
    ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": ' "UTC"}'}}}),
    ("contentBlockStop", {"contentBlockIndex": 2}),
    ("messageStop", {"stopReason": "tool_use"}),
    ("metadata", {"usage": {"inputTokens": 30, "outputTokens": 25, "totalTokens": 55}}),
]


def test_tool_use_stream_becomes_tool_call_deltas() -> None:
    translator, chunks = run(TOOL_STREAM)
    all_deltas = deltas(chunks)
    assert all_deltas[0] == {"role": "assistant", "content": ""}
    assert all_deltas[1] == {"content": "Checking."}
    calls = [call for delta in all_deltas for call in delta.get("tool_calls", [])]
    assert [call["index"] for call in calls] == [0, 0, 0, 0, 1, 1, 1]
    by_index: dict[int, list[dict[str, Any]]] = {}
    for call in calls:
        by_index.setdefault(call["index"], []).append(call)
    expected = {
        0: ("tooluse_w", "get_weather", {"city": "Paris"}),
        1: ("tooluse_t", "get_time", {"tz": "UTC"}),
    }
    for index, (call_id, name, arguments) in expected.items():
        first, *rest = by_index[index]
        assert first["id"] == call_id
        assert first["type"] == "function"
        assert first["function"]["name"] == name
        for later in rest:
            assert "id" not in later
            assert "name" not in later["function"]
        joined = "".join(call["function"].get("arguments", "") for call in by_index[index])
        assert json.loads(joined) == arguments
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.finish_reason == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 55


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        pytest.param("contentBlockStop", {"contentBlockIndex": 0}, id="contentBlockStop"),
        pytest.param("somethingNew", {"foo": 1}, id="unknown-event"),
        pytest.param(
            "contentBlockStart",
            {"contentBlockIndex": 0, "start": {"image": {}}},
            id="non-tool-block-start",
        ),
        pytest.param(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
            id="reasoning-delta",
        ),
    ],
)
def test_events_without_an_openai_equivalent_are_ignored(
    event_type: str, payload: dict[str, Any]
) -> None:
    translator, chunks = run([(event_type, payload)])
    assert chunks == []
    assert translator.usage is None
    assert translator.finish_reason is None


def test_unknown_events_do_not_disturb_a_stream() -> None:
    noisy = [TEXT_STREAM[0], ("futureEvent", {"x": 1}), *TEXT_STREAM[1:]]
    assert run(noisy)[1] == run(TEXT_STREAM)[1]
