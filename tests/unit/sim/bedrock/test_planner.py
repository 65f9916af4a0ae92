"""Which reply a request gets: text, tool use, limits — and its stream events."""

from __future__ import annotations

import random
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer

from fulcrum.sim.bedrock import wire
from fulcrum.sim.bedrock.catalog import HAIKU, default_catalog
from fulcrum.sim.bedrock.generation import PADDING_ALPHABET
from fulcrum.sim.bedrock.planner import plan_reply
from fulcrum.sim.bedrock.protocol import ConverseRequest, parse_converse
from fulcrum.sim.bedrock.tokenizer import count_tokens

MODEL = default_catalog().model(HAIKU)
TOOLS = [
    {
        "toolSpec": {
            "name": "get_weather",
            "inputSchema": {
                "json": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                }
            },
        }
    },
    {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}},
]


def _req(text: str, choice: dict[str, Any] | None = None, **config: Any) -> ConverseRequest:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": text}]}]}
    tool_config: dict[str, Any] = {"tools": TOOLS}
    if choice is not None:
        tool_config["toolChoice"] = choice
    body["toolConfig"] = tool_config
    if config:
        body["inferenceConfig"] = config
    return parse_converse(orjson.dumps(body), MODEL, HAIKU)


def test_auto_answers_with_text_unless_a_tool_is_named() -> None:
    reply = plan_reply(_req("Tell me a story"), 16, 64)
    assert reply.tool is None and reply.stop_reason == "end_turn"
    assert reply.output_tokens == count_tokens(reply.text or "")
    reply = plan_reply(_req("Please use get_time now"), 16, 64)
    assert reply.tool is not None and reply.tool.name == "get_time"
    assert reply.text == "Let me use the get_time tool."
    assert reply.stop_reason == "tool_use"


def test_any_and_named_choices_force_a_tool_without_text() -> None:
    reply = plan_reply(_req("hello", {"any": {}}), 16, 64)
    assert reply.tool is not None and reply.tool.name == "get_weather"  # the first tool
    assert reply.text is None
    assert set(reply.tool.input) == {"city"}
    assert orjson.loads(reply.tool.input_json) == reply.tool.input
    reply = plan_reply(_req("hello", {"tool": {"name": "get_time"}}), 16, 64)
    assert reply.tool is not None and reply.tool.name == "get_time"


def test_after_a_tool_result_auto_answers_with_text() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"text": "use get_weather for Paris"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}}],
            },
        ],
        "toolConfig": {"tools": TOOLS},
    }
    reply = plan_reply(parse_converse(orjson.dumps(body), MODEL, HAIKU), 16, 64)
    assert reply.tool is None and reply.stop_reason == "end_turn"


def test_max_tokens_can_cut_off_the_tool_call() -> None:
    reply = plan_reply(_req("use get_weather", maxTokens=3), 16, 64)
    assert (reply.tool, reply.stop_reason, reply.output_tokens) == (None, "max_tokens", 3)
    full = plan_reply(_req("use get_weather"), 16, 64)
    text_tokens = count_tokens(full.text or "")
    reply = plan_reply(_req("use get_weather", maxTokens=text_tokens + 1), 16, 64)
    assert reply.tool is None and reply.stop_reason == "max_tokens"
    assert reply.text == full.text


def test_stream_events_cover_text_then_tool() -> None:
    reply = plan_reply(_req("use get_weather please"), 16, 64)
    events = list(wire.stream_events(reply))
    kinds = [e.event_type for e in events]
    assert kinds[0] == "messageStart" and kinds[-1] == "messageStop"
    assert "contentBlockStart" in kinds
    # no contentBlockStart for the text block, one for the tool block (index 1)
    starts = [e.payload for e in events if e.event_type == "contentBlockStart"]
    assert starts == [
        {
            "contentBlockIndex": 1,
            "start": {"toolUse": {"toolUseId": reply.tool.tool_use_id, "name": "get_weather"}},  # type: ignore[union-attr]
        }
    ]
    text = "".join(
        e.payload["delta"]["text"]
        for e in events
        if e.event_type == "contentBlockDelta" and "text" in e.payload["delta"]
    )
    arguments = "".join(
        e.payload["delta"]["toolUse"]["input"]
        for e in events
        if e.event_type == "contentBlockDelta" and "toolUse" in e.payload["delta"]
    )
    assert text == reply.text
    assert orjson.loads(arguments) == reply.tool.input  # type: ignore[union-attr]
    assert sum(e.token for e in events) == reply.deltas


def test_usage_reports_cache_fields_only_when_caching() -> None:
    assert wire.TokenUsage(10, 5).to_json() == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 15,
    }
    assert wire.TokenUsage(10, 5, 100, 0, True).to_json() == {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 115,
        "cacheReadInputTokens": 100,
        "cacheWriteInputTokens": 0,
    }


def test_padded_frames_carry_random_alphabet_prefixes() -> None:
    rng = random.Random(0)
    item = wire.stem("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " hi"}}, True)
    paddings = set()
    for _ in range(300):
        buffer = EventStreamBuffer()
        buffer.add_data(wire.padded(item, rng))
        (message,) = list(buffer)
        payload = orjson.loads(message.payload)
        assert payload["delta"] == {"text": " hi"} and payload["contentBlockIndex"] == 0
        assert payload["p"] and PADDING_ALPHABET.startswith(payload["p"])
        paddings.add(payload["p"])
    assert len(paddings) > 40
    assert {len(p) for p in paddings} >= {1, len(PADDING_ALPHABET)}
