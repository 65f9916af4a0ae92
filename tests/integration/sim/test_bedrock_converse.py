"""Converse and InvokeModel through boto3's own bedrock-runtime client, against the emulator."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient

from tests.integration.sim.bedrock_helpers import (
    API_KEY,
    HAIKU,
    LLAMA,
    PT_LARGE,
    SONNET,
    TEST_CATALOG,
    TITAN,
    WEATHER_TOOL,
    BedrockEmulator,
    start_bedrock,
    user,
    validate_output,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture(scope="module")
def bedrock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockEmulator]:
    sim = start_bedrock(
        tmp_path_factory.mktemp("bedrock-converse"),
        "--no-latency",
        "--api-key",
        API_KEY,
        catalog=TEST_CATALOG,
    )
    try:
        yield sim
    finally:
        sim.server.stop()


@pytest.fixture
def client(bedrock: BedrockEmulator) -> Iterator[BaseClient]:
    bedrock.reset()
    yield bedrock.client()


def _text(response: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in response["output"]["message"]["content"])


def test_plain_text_reply_validates_and_is_deterministic(client: BaseClient) -> None:
    response = client.converse(modelId=HAIKU, messages=[user("Hello there")])
    validate_output(client, "Converse", response)
    assert response["output"]["message"]["role"] == "assistant"
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert 16 <= usage["outputTokens"] <= 64
    assert "cacheReadInputTokens" not in usage
    assert response["metrics"]["latencyMs"] >= 0
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"]
    again = client.converse(modelId=HAIKU, messages=[user("Hello there")])
    assert _text(again) == _text(response)
    other = client.converse(modelId=HAIKU, messages=[user("Something else")])
    assert _text(other) != _text(response)


def test_system_prompt_and_multi_turn(client: BaseClient) -> None:
    messages = [user("Hi"), {"role": "assistant", "content": [{"text": "Hello!"}]}, user("More")]
    response = client.converse(
        modelId=f"us.{HAIKU}",
        system=[{"text": "You are terse."}],
        messages=messages,
        inferenceConfig={"temperature": 0.2, "topP": 0.9},
        additionalModelRequestFields={"top_k": 5},
    )
    validate_output(client, "Converse", response)
    without_system = client.converse(modelId=f"us.{HAIKU}", messages=messages)
    assert response["usage"]["inputTokens"] > without_system["usage"]["inputTokens"]


def test_max_tokens_and_stop_sequences(client: BaseClient) -> None:
    full = client.converse(modelId=HAIKU, messages=[user("Write something")])
    cut = client.converse(
        modelId=HAIKU, messages=[user("Write something")], inferenceConfig={"maxTokens": 5}
    )
    validate_output(client, "Converse", cut)
    assert cut["stopReason"] == "max_tokens"
    assert cut["usage"]["outputTokens"] == 5
    assert _text(full).startswith(_text(cut))
    word = _text(full).split()[6].strip(",.")
    stopped = client.converse(
        modelId=HAIKU, messages=[user("Write something")], inferenceConfig={"stopSequences": [word]}
    )
    validate_output(client, "Converse", stopped)
    assert stopped["stopReason"] == "stop_sequence"
    assert _text(full).startswith(_text(stopped))
    assert word not in _text(stopped)


def test_tool_use_loop(client: BaseClient) -> None:
    tool_config = {"tools": [WEATHER_TOOL]}
    messages: list[dict[str, Any]] = [user("Use get_weather for Paris, please.")]
    first = client.converse(modelId=SONNET, messages=messages, toolConfig=tool_config)
    validate_output(client, "Converse", first)
    assert first["stopReason"] == "tool_use"
    content = first["output"]["message"]["content"]
    assert content[0]["text"] == "Let me use the get_weather tool."
    call = content[1]["toolUse"]
    assert call["name"] == "get_weather"
    assert call["toolUseId"].startswith("tooluse_")
    assert set(call["input"]) == {"city", "unit"} and call["input"]["unit"] == "celsius"

    messages.append(first["output"]["message"])
    messages.append(
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": call["toolUseId"],
                        "content": [{"json": {"temperature": 21, "sky": "clear"}}],
                        "status": "success",
                    }
                }
            ],
        }
    )
    second = client.converse(modelId=SONNET, messages=messages, toolConfig=tool_config)
    validate_output(client, "Converse", second)
    assert second["stopReason"] == "end_turn"
    assert [list(b) for b in second["output"]["message"]["content"]] == [["text"]]


def test_forced_tool_choice(client: BaseClient) -> None:
    response = client.converse(
        modelId=HAIKU,
        messages=[user("hello")],
        toolConfig={"tools": [WEATHER_TOOL], "toolChoice": {"tool": {"name": "get_weather"}}},
    )
    validate_output(client, "Converse", response)
    assert response["stopReason"] == "tool_use"
    assert [list(b) for b in response["output"]["message"]["content"]] == [["toolUse"]]


def test_image_block(client: BaseClient) -> None:
    response = client.converse(
        modelId=HAIKU,
        messages=[
            {
                "role": "user",
                "content": [
                    {"text": "What is in this picture?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            }
        ],
    )
    validate_output(client, "Converse", response)
    with pytest.raises(client.exceptions.ValidationException, match="image"):
        client.converse(
            modelId=LLAMA,
            messages=[
                {
                    "role": "user",
                    "content": [{"image": {"format": "png", "source": {"bytes": PNG}}}],
                }
            ],
        )


def test_prompt_caching_writes_then_reads(client: BaseClient) -> None:
    system = [
        {"text": "Shared context. " + "alpha beta gamma " * 400},
        {"cachePoint": {"type": "default"}},
    ]
    first = client.converse(modelId=HAIKU, system=system, messages=[user("Question one")])
    validate_output(client, "Converse", first)
    usage = first["usage"]
    assert usage["cacheWriteInputTokens"] > 1024 and usage["cacheReadInputTokens"] == 0
    second = client.converse(modelId=HAIKU, system=system, messages=[user("Question two")])
    validate_output(client, "Converse", second)
    assert second["usage"]["cacheReadInputTokens"] == usage["cacheWriteInputTokens"]
    assert second["usage"]["cacheWriteInputTokens"] == 0
    assert second["usage"]["inputTokens"] < 30
    total = second["usage"]
    assert total["totalTokens"] == (
        total["inputTokens"] + total["outputTokens"] + total["cacheReadInputTokens"]
    )


def test_provisioned_throughput_arn_and_profile_arn(client: BaseClient) -> None:
    response = client.converse(modelId=PT_LARGE, messages=[user("Hello there")])
    validate_output(client, "Converse", response)
    plain = client.converse(modelId=HAIKU, messages=[user("Hello there")])
    assert _text(response) == _text(plain)  # same base model, same reply
    profile_arn = f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU}"
    validate_output(client, "Converse", client.converse(modelId=profile_arn, messages=[user("x")]))


def test_validation_errors_surface_as_botocore_exceptions(
    bedrock: BedrockEmulator, client: BaseClient
) -> None:
    with pytest.raises(client.exceptions.ValidationException) as info:
        client.converse(modelId=HAIKU, messages=[{"role": "assistant", "content": [{"text": "x"}]}])
    assert "must start with a user message" in str(info.value)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(client.exceptions.ValidationException, match="alternate"):
        client.converse(modelId=HAIKU, messages=[user("a"), user("b")])
    with pytest.raises(client.exceptions.ValidationException, match="model identifier is invalid"):
        client.converse(modelId="anthropic.claude-0-v1:0", messages=[user("a")])
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.converse(
            modelId="arn:aws:bedrock:us-east-1:123456789012:provisioned-model/doesnotexist",
            messages=[user("a")],
        )
    # Constraint checks that botocore would catch client-side reach the server when disabled.
    unchecked = bedrock.client(parameter_validation=False)
    with pytest.raises(unchecked.exceptions.ValidationException) as info:
        unchecked.converse(modelId=HAIKU, messages=[user("a")], inferenceConfig={"maxTokens": 0})
    assert "1 validation error detected" in str(info.value)


def test_titan_embeddings_through_invoke_model(client: BaseClient) -> None:
    body = json.dumps(
        {"inputText": "hello world", "dimensions": 256, "embeddingTypes": ["float", "binary"]}
    )
    response = client.invoke_model(
        modelId=TITAN, body=body, contentType="application/json", accept="application/json"
    )
    validate_output(client, "InvokeModel", response)
    assert response["contentType"] == "application/json"
    payload = json.loads(response["body"].read())
    assert len(payload["embedding"]) == 256
    assert payload["embeddingsByType"]["float"] == payload["embedding"]
    assert set(payload["embeddingsByType"]["binary"]) <= {0, 1}
    assert payload["inputTextTokenCount"] == 2
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    default = json.loads(
        client.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "hi"}))["body"].read()
    )
    assert len(default["embedding"]) == 1024 and list(default["embeddingsByType"]) == ["float"]
    with pytest.raises(client.exceptions.ValidationException, match="Malformed input request"):
        client.invoke_model(modelId=TITAN, body=json.dumps({"text": "hi"}))
    with pytest.raises(client.exceptions.ValidationException, match="doesn't support the model"):
        client.converse(modelId=TITAN, messages=[user("hi")])
