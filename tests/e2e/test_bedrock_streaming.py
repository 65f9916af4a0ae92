"""Streaming chat served by Bedrock ConverseStream, and the accounting of Bedrock's usage.

ConverseStream's binary event stream becomes OpenAI ``chat.completion.chunk`` events: text
deltas, tool-use starts and partial-JSON input deltas as ``tool_calls`` deltas, ``messageStop``
as the finish reason, ``metadata`` as the usage chunk (forwarded only when the client asked for
it with ``stream_options.include_usage``, counted in the metrics always).
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import metric_value
from tests.e2e.bedrock_fixtures import HAIKU, BedrockStack, stream_reference
from tests.e2e.helpers import sse_events, summarize_stream, token_counts, wait_token_counts

QUESTION = "Describe the Orinoco delta."
USER = [{"role": "user", "content": QUESTION}]
CONVERSE_USER = [{"role": "user", "content": [{"text": QUESTION}]}]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days", "unit"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "description": "A forecast.",
            "parameters": WEATHER_SCHEMA,
        },
    }
]


def test_stream_content_equals_the_non_streaming_answer(bedrock_stack: BedrockStack) -> None:
    client = bedrock_stack.gateway.client()
    whole = client.chat.completions.create(model="haiku", messages=USER, max_tokens=48)
    chunks = list(
        client.chat.completions.create(model="haiku", messages=USER, max_tokens=48, stream=True)
    )
    reference = stream_reference(
        bedrock_stack.main.boto(),
        modelId=HAIKU,
        messages=CONVERSE_USER,
        inferenceConfig={"maxTokens": 48},
    )
    summary = summarize_stream(chunks)

    assert summary.content[0]
    assert summary.content[0] == whole.choices[0].message.content == reference["text"]
    assert summary.finish_reasons == {0: whole.choices[0].finish_reason}
    assert summary.models == {"haiku"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    # The first chunk carries the role; exactly one chunk carries the finish reason, the last.
    assert chunks[0].choices[0].delta.role == "assistant"
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason is not None]
    assert finishing == [chunks[-1]]
    # Not asked for: no usage chunk.
    assert summary.usage == []
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_usage_chunk_only_with_include_usage(bedrock_stack: BedrockStack) -> None:
    client = bedrock_stack.gateway.client()
    whole = client.chat.completions.create(model="haiku", messages=USER)
    chunks = list(
        client.chat.completions.create(
            model="haiku",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    assert usage_chunks == [chunks[-1]]  # one, the last
    assert chunks[-1].choices == []
    assert whole.usage is not None
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
        whole.usage.total_tokens,
    )
    assert summarize_stream(chunks).content[0] == whole.choices[0].message.content


def test_stream_raw_sse_ends_with_done(bedrock_stack: BedrockStack) -> None:
    result = bedrock_stack.gateway.post(
        "chat/completions", {"model": "haiku", "messages": USER, "stream": True}
    )
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    events = sse_events(result.body)
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    assert all("error" not in json.loads(data) for data in events[:-1])


def _tool_stream(bedrock_stack: BedrockStack, **params: Any) -> list[Any]:
    return list(
        bedrock_stack.gateway.client().chat.completions.create(
            model="haiku", tools=TOOLS, stream=True, **params
        )
    )


def test_tool_use_stream_produces_tool_call_deltas(bedrock_stack: BedrockStack) -> None:
    messages = [{"role": "user", "content": "Forecast for Cusco, three days."}]
    chunks = _tool_stream(bedrock_stack, messages=messages, tool_choice="required")
    whole = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku", messages=messages, tools=TOOLS, tool_choice="required"
    )
    assert whole.choices[0].message.tool_calls is not None
    expected = whole.choices[0].message.tool_calls[0]

    deltas = [
        call
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
    ]
    assert len(deltas) >= 2  # a start, then the input in pieces
    first, rest = deltas[0], deltas[1:]
    assert first.index == 0
    assert first.id == expected.id
    assert first.id and first.id.startswith("tooluse_")
    assert first.type == "function"
    assert first.function is not None and first.function.name == "get_forecast"
    for delta in rest:
        assert delta.index == 0
        assert delta.id is None
        assert delta.function is not None and delta.function.name is None
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function is not None)
    assert json.loads(arguments) == json.loads(expected.function.arguments)
    assert set(json.loads(arguments)) == {"city", "days", "unit"}

    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert [f for f in finishes if f is not None] == ["tool_calls"]
    assert not any(c.choices[0].delta.content for c in chunks if c.choices)


def test_tool_use_stream_after_text(bedrock_stack: BedrockStack) -> None:
    """``auto`` with the tool named: text first (block 0), then the tool (block 1) as index 0."""
    messages = [{"role": "user", "content": "Please call get_forecast for Arequipa."}]
    chunks = _tool_stream(bedrock_stack, messages=messages)
    whole = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku", messages=messages, tools=TOOLS
    )
    summary = summarize_stream(chunks)
    assert summary.content[0] == whole.choices[0].message.content
    assert summary.content[0]
    assert whole.choices[0].message.tool_calls is not None
    expected = whole.choices[0].message.tool_calls[0]
    assert summary.tool_calls == {
        0: {0: {"name": expected.function.name, "arguments": summary.tool_calls[0][0]["arguments"]}}
    }
    assert json.loads(summary.tool_calls[0][0]["arguments"]) == json.loads(
        expected.function.arguments
    )
    assert summary.finish_reasons == {0: "tool_calls"}


# -- accounting --------------------------------------------------------------------------------


def test_tokens_metric_grows_by_bedrock_usage(bedrock_stack: BedrockStack) -> None:
    gateway = bedrock_stack.gateway
    client = gateway.client()
    boto = bedrock_stack.main.boto()
    messages = [{"role": "user", "content": "Count the tributaries of the Paraná."}]
    converse_messages = [
        {"role": "user", "content": [{"text": "Count the tributaries of the Paraná."}]}
    ]

    before = token_counts(gateway.metrics(), "br-haiku")
    requests_before = metric_value(
        gateway.metrics(), "fulcrum_requests_total", deployment="br-haiku", status="200"
    )

    # Non-streaming: Bedrock's usage from the Converse response.
    client.chat.completions.create(model="haiku", messages=messages, max_tokens=5)
    plain = boto.converse(
        modelId=HAIKU, messages=converse_messages, inferenceConfig={"maxTokens": 5}
    )["usage"]
    expected = (before[0] + plain["inputTokens"], before[1] + plain["outputTokens"])
    assert wait_token_counts(gateway, "br-haiku", expected) == expected

    # Streaming without include_usage: the metadata event is still read and counted.
    list(client.chat.completions.create(model="haiku", messages=messages, stream=True))
    streamed = stream_reference(boto, modelId=HAIKU, messages=converse_messages)["usage"]
    assert streamed["outputTokens"] > plain["outputTokens"]  # the uncut reply
    expected = (expected[0] + streamed["inputTokens"], expected[1] + streamed["outputTokens"])
    assert wait_token_counts(gateway, "br-haiku", expected) == expected

    requests_after = metric_value(
        gateway.metrics(), "fulcrum_requests_total", deployment="br-haiku", status="200"
    )
    assert requests_after - requests_before == 2
