"""Chat completions served by Bedrock: the ``openai`` SDK → Fulcrum → the Bedrock emulator.

The reference for every answer is the emulator itself, asked directly with boto3's
``bedrock-runtime`` client for the Converse request the OpenAI request stands for. The emulator's
replies are a deterministic function of (base model, system, messages, toolConfig, temperature,
topP), cut by maxTokens / stopSequences, so equal text proves the gateway sent exactly that
Converse request, and equal usage proves it reported Bedrock's token counts.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import openai
import pytest

from tests.e2e.bedrock_fixtures import (
    HAIKU,
    HAIKU_US,
    PT_ARN,
    SONNET,
    BedrockStack,
    converse_text,
    converse_tool_use,
)
from tests.e2e.helpers import assert_error_body, sdk_error_body

QUESTION = "Name three rivers of South America."
USER = [{"role": "user", "content": QUESTION}]
CONVERSE_USER = [{"role": "user", "content": [{"text": QUESTION}]}]


def _usage(completion: Any) -> tuple[int, int, int]:
    usage = completion.usage
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


def _bedrock_usage(response: dict[str, Any]) -> tuple[int, int, int]:
    usage = response["usage"]
    return usage["inputTokens"], usage["outputTokens"], usage["totalTokens"]


# -- plain chat ----------------------------------------------------------------------------------


def test_plain_chat_equals_the_converse_answer(bedrock_stack: BedrockStack) -> None:
    raw = bedrock_stack.gateway.client().chat.completions.with_raw_response.create(
        model="haiku", messages=USER, temperature=0.7, top_p=0.9
    )
    completion = raw.parse()
    reference = bedrock_stack.main.boto().converse(
        modelId=HAIKU,
        messages=CONVERSE_USER,
        inferenceConfig={"temperature": 0.7, "topP": 0.9},
    )

    assert raw.headers["x-fulcrum-deployment"] == "br-haiku"
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "haiku"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.message.content == converse_text(reference)
    assert choice.message.tool_calls is None
    assert reference["stopReason"] == "end_turn"
    assert choice.finish_reason == "stop"
    assert _usage(completion) == _bedrock_usage(reference)


@pytest.mark.parametrize("limit_param", ["max_tokens", "max_completion_tokens"])
def test_output_limit_ends_with_length(bedrock_stack: BedrockStack, limit_param: str) -> None:
    completion = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku", messages=USER, **{limit_param: 5}
    )
    reference = bedrock_stack.main.boto().converse(
        modelId=HAIKU, messages=CONVERSE_USER, inferenceConfig={"maxTokens": 5}
    )
    assert reference["stopReason"] == "max_tokens"
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == converse_text(reference)
    assert _usage(completion) == _bedrock_usage(reference)
    assert completion.usage is not None and completion.usage.completion_tokens == 5


@pytest.mark.parametrize("as_list", [False, True], ids=["string", "list"])
def test_stop_sequence_ends_with_stop(bedrock_stack: BedrockStack, as_list: bool) -> None:
    client = bedrock_stack.main.boto()
    full = converse_text(client.converse(modelId=HAIKU, messages=CONVERSE_USER))
    # A word from the middle of the natural reply, so the stop sequence is certainly hit.
    stop = " " + full.split()[3].strip(",.")
    assert stop in full

    completion = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku", messages=USER, stop=[stop] if as_list else stop
    )
    reference = client.converse(
        modelId=HAIKU, messages=CONVERSE_USER, inferenceConfig={"stopSequences": [stop]}
    )
    assert reference["stopReason"] == "stop_sequence"
    content = completion.choices[0].message.content
    assert content == converse_text(reference)
    assert content and full.startswith(content) and stop not in content
    assert completion.choices[0].finish_reason == "stop"
    assert _usage(completion) == _bedrock_usage(reference)


# -- conversations ------------------------------------------------------------------------------

SYSTEM = "You are a terse geography tutor."
TURNS = [
    {"role": "user", "content": "Which is the longest river in Europe?"},
    {"role": "assistant", "content": "The Volga."},
    {"role": "user", "content": "And in Africa?"},
]
CONVERSE_TURNS = [
    {"role": "user", "content": [{"text": "Which is the longest river in Europe?"}]},
    {"role": "assistant", "content": [{"text": "The Volga."}]},
    {"role": "user", "content": [{"text": "And in Africa?"}]},
]


def test_multi_turn_with_a_system_prompt(bedrock_stack: BedrockStack) -> None:
    completion = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku", messages=[{"role": "system", "content": SYSTEM}, *TURNS], max_tokens=40
    )
    client = bedrock_stack.main.boto()
    reference = client.converse(
        modelId=HAIKU,
        system=[{"text": SYSTEM}],
        messages=CONVERSE_TURNS,
        inferenceConfig={"maxTokens": 40},
    )
    without_system = client.converse(
        modelId=HAIKU, messages=CONVERSE_TURNS, inferenceConfig={"maxTokens": 40}
    )

    assert completion.choices[0].message.content == converse_text(reference)
    # The reply depends on the system prompt: the emulator saw it (as `system`, not a turn).
    assert converse_text(reference) != converse_text(without_system)
    assert _usage(completion) == _bedrock_usage(reference)
    assert completion.choices[0].finish_reason == "stop"


def test_consecutive_same_role_messages_are_merged(bedrock_stack: BedrockStack) -> None:
    """Bedrock needs alternating turns: two user messages become one turn of two blocks."""
    completion = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "system", "content": "Answer in one line."},
            {"role": "user", "content": "First question."},
            {"role": "user", "content": [{"type": "text", "text": "Second question."}]},
        ],
    )
    reference = bedrock_stack.main.boto().converse(
        modelId=HAIKU,
        system=[{"text": SYSTEM}, {"text": "Answer in one line."}],
        messages=[
            {"role": "user", "content": [{"text": "First question."}, {"text": "Second question."}]}
        ],
    )
    assert completion.choices[0].message.content == converse_text(reference)
    assert _usage(completion) == _bedrock_usage(reference)


# -- tool calling ------------------------------------------------------------------------------

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": WEATHER_SCHEMA,
        },
    }
]
CONVERSE_TOOLS = [
    {
        "toolSpec": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "inputSchema": {"json": WEATHER_SCHEMA},
        }
    }
]
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather like in Lima?"}]
CONVERSE_WEATHER_QUESTION = [
    {"role": "user", "content": [{"text": "What is the weather like in Lima?"}]}
]


def test_tool_calling_full_loop(bedrock_stack: BedrockStack) -> None:
    client = bedrock_stack.gateway.client()
    boto = bedrock_stack.main.boto()

    # 1. The model is required to call a tool.
    first = client.chat.completions.create(
        model="haiku", messages=WEATHER_QUESTION, tools=TOOLS, tool_choice="required"
    )
    reference = boto.converse(
        modelId=HAIKU,
        messages=CONVERSE_WEATHER_QUESTION,
        toolConfig={"tools": CONVERSE_TOOLS, "toolChoice": {"any": {}}},
    )
    assert reference["stopReason"] == "tool_use"
    expected_call = converse_tool_use(reference)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id == expected_call["toolUseId"]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments == expected_call["input"]
    assert set(arguments) == {"city", "unit"}
    assert _usage(first) == _bedrock_usage(reference)

    # 2. The tool's result goes back; the model answers with text.
    result = json.dumps({"temperature": 19, "sky": "overcast"})
    second = client.chat.completions.create(
        model="haiku",
        messages=[
            *WEATHER_QUESTION,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ],
        tools=TOOLS,
    )
    final_reference = boto.converse(
        modelId=HAIKU,
        messages=[
            *CONVERSE_WEATHER_QUESTION,
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": call.id,
                            "name": "get_weather",
                            "input": arguments,
                        }
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": result}]}}],
            },
        ],
        toolConfig={"tools": CONVERSE_TOOLS, "toolChoice": {"auto": {}}},
    )
    assert final_reference["stopReason"] == "end_turn"
    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert answer.message.tool_calls is None
    assert answer.message.content
    assert answer.message.content == converse_text(final_reference)
    assert _usage(second) == _bedrock_usage(final_reference)


def test_named_tool_choice_with_auto_text(bedrock_stack: BedrockStack) -> None:
    """``tool_choice: auto`` and a question naming the tool: a short text, then the call."""
    completion = bedrock_stack.gateway.client().chat.completions.create(
        model="haiku",
        messages=[{"role": "user", "content": "Use get_weather for Quito, please."}],
        tools=TOOLS,
        tool_choice="auto",
    )
    reference = bedrock_stack.main.boto().converse(
        modelId=HAIKU,
        messages=[{"role": "user", "content": [{"text": "Use get_weather for Quito, please."}]}],
        toolConfig={"tools": CONVERSE_TOOLS, "toolChoice": {"auto": {}}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == converse_text(reference)
    assert choice.message.tool_calls is not None
    assert [c.id for c in choice.message.tool_calls] == [converse_tool_use(reference)["toolUseId"]]


# -- images ------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png() -> bytes:
    """A valid 1x1 RGB PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x2a\x80\xc0")  # filter byte + one RGB pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def test_image_as_data_url(bedrock_stack: BedrockStack) -> None:
    png = tiny_png()
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    raw = bedrock_stack.gateway.client().chat.completions.with_raw_response.create(
        model="haiku",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour is this pixel?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            }
        ],
    )
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    # boto3 sends the image bytes (base64 in the JSON body): the same reply means the same image.
    reference = bedrock_stack.main.boto().converse(
        modelId=HAIKU,
        messages=[
            {
                "role": "user",
                "content": [
                    {"text": "What colour is this pixel?"},
                    {"image": {"format": "png", "source": {"bytes": png}}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == converse_text(reference)
    assert _usage(completion) == _bedrock_usage(reference)


def test_image_by_http_url_is_400_naming_the_part(bedrock_stack: BedrockStack) -> None:
    before = bedrock_stack.main.count(HAIKU)
    with pytest.raises(openai.BadRequestError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(
            model="haiku",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe it."},
                        {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}},
                    ],
                }
            ],
        )
    assert caught.value.status_code == 400
    error = assert_error_body(sdk_error_body(caught.value), code=None)
    assert error["param"] == "messages[0].content[1]"
    assert bedrock_stack.main.count(HAIKU) == before  # rejected before any upstream call


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_unsupported_parameter_is_400_naming_it(
    bedrock_stack: BedrockStack, extra: dict[str, Any], param: str
) -> None:
    before = bedrock_stack.main.count(HAIKU)
    with pytest.raises(openai.BadRequestError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(
            model="haiku", messages=USER, extra_body=extra
        )
    error = assert_error_body(sdk_error_body(caught.value), code=None, param=param)
    assert param in error["message"]
    assert bedrock_stack.main.count(HAIKU) == before


# -- model ids: inference profile, Provisioned Throughput, API key ------------------------------


@pytest.mark.parametrize(
    ("alias", "deployment", "model_id"),
    [
        ("haiku-us", "br-us", HAIKU_US),
        ("haiku-pt", "br-pt", PT_ARN),
        ("sonnet-key", "br-apikey", SONNET),
    ],
    ids=["inference-profile", "provisioned-arn", "api-key"],
)
def test_model_ids_reach_bedrock_as_configured(
    bedrock_stack: BedrockStack, alias: str, deployment: str, model_id: str
) -> None:
    main = bedrock_stack.main
    before = main.stats()["requests"]
    raw = bedrock_stack.gateway.client().chat.completions.with_raw_response.create(
        model=alias, messages=USER, max_tokens=20
    )
    after = main.stats()["requests"]
    completion = raw.parse()
    assert raw.headers["x-fulcrum-deployment"] == deployment
    assert completion.model == alias

    def delta(model: str) -> int:
        return int(after.get(model, {}).get("Converse", 0)) - int(
            before.get(model, {}).get("Converse", 0)
        )

    # Exactly one Converse call, under the configured id (an ARN arrives in one path segment,
    # percent-encoded: an unencoded '/' would have split the route into a 404).
    assert delta(model_id) == 1
    assert sum(delta(model) for model in set(before) | set(after)) == 1

    # boto3 percent-encodes the id itself (and signs with SigV4): same reply.
    reference = main.boto().converse(
        modelId=model_id, messages=CONVERSE_USER, inferenceConfig={"maxTokens": 20}
    )
    assert completion.choices[0].message.content == converse_text(reference)
    assert _usage(completion) == _bedrock_usage(reference)
