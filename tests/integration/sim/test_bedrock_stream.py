"""ConverseStream through boto3: every event parsed and validated, mid-stream exceptions, pacing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError

from fulcrum.sim.bedrock.generation import PADDING_ALPHABET
from tests.integration.sim.bedrock_helpers import (
    HAIKU,
    TEST_CATALOG,
    WEATHER_TOOL,
    BedrockEmulator,
    start_bedrock,
    user,
    validate_event,
    validate_output,
)


@pytest.fixture(scope="module")
def bedrock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockEmulator]:
    sim = start_bedrock(
        tmp_path_factory.mktemp("bedrock-stream"), "--no-latency", catalog=TEST_CATALOG
    )
    try:
        yield sim
    finally:
        sim.server.stop()


@pytest.fixture
def client(bedrock: BedrockEmulator) -> Iterator[BaseClient]:
    bedrock.reset()
    yield bedrock.client()


def _events(client: BaseClient, **kwargs: Any) -> list[dict[str, Any]]:
    response = client.converse_stream(**kwargs)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    events = list(response["stream"])
    for event in events:
        validate_event(client, event)
    return events


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [next(iter(e)) for e in events]


def test_text_stream_matches_converse(client: BaseClient) -> None:
    events = _events(client, modelId=HAIKU, messages=[user("Hello there")])
    names = _names(events)
    assert names[0] == "messageStart" and events[0]["messageStart"]["role"] == "assistant"
    assert names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert "contentBlockStart" not in names  # text blocks have no start event
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    assert all(d["contentBlockIndex"] == 0 for d in deltas)
    text = "".join(d["delta"]["text"] for d in deltas)
    whole = client.converse(modelId=HAIKU, messages=[user("Hello there")])
    validate_output(client, "Converse", whole)
    assert text == whole["output"]["message"]["content"][0]["text"]
    assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    metadata = events[-1]["metadata"]
    assert metadata["usage"] == whole["usage"]
    assert metadata["metrics"]["latencyMs"] >= 0


def test_tool_use_stream(client: BaseClient) -> None:
    events = _events(
        client,
        modelId=HAIKU,
        messages=[user("Check get_weather for Oslo")],
        toolConfig={"tools": [WEATHER_TOOL]},
    )
    names = _names(events)
    start = names.index("contentBlockStart")
    tool_start = events[start]["contentBlockStart"]
    assert tool_start["contentBlockIndex"] == 1
    tool = tool_start["start"]["toolUse"]
    assert tool["name"] == "get_weather" and tool["toolUseId"].startswith("tooluse_")
    pieces = [
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events[start:]
        if "contentBlockDelta" in e
    ]
    assert len(pieces) > 1  # the input arrives as partial JSON
    arguments = json.loads("".join(pieces))
    assert set(arguments) == {"city", "unit"}
    assert {"contentBlockStop": {"contentBlockIndex": 1}} in events
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    whole = client.converse(
        modelId=HAIKU,
        messages=[user("Check get_weather for Oslo")],
        toolConfig={"tools": [WEATHER_TOOL]},
    )
    assert whole["output"]["message"]["content"][1]["toolUse"]["input"] == arguments


def test_stream_stop_reasons(client: BaseClient) -> None:
    events = _events(client, modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 3})
    assert events[-2]["messageStop"]["stopReason"] == "max_tokens"
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 3


def test_every_event_carries_random_padding(bedrock: BedrockEmulator) -> None:
    """The raw frames (decoded with botocore's buffer) carry ``p``; the parser drops it."""
    body = json.dumps({"messages": [user("Hello there")]}).encode()
    reply = bedrock.signed(
        "POST",
        f"/model/{HAIKU.replace(':', '%3A')}/converse-stream",
        body,
        {"Content-Type": "application/json"},
    )
    assert reply.status == 200
    buffer = EventStreamBuffer()
    buffer.add_data(reply.body)
    paddings = []
    for message in buffer:
        payload = json.loads(message.payload)
        assert message.headers[":message-type"] == "event"
        assert message.headers[":content-type"] == "application/json"
        assert PADDING_ALPHABET.startswith(payload["p"]) and payload["p"]
        paddings.append(payload["p"])
    assert len(set(paddings)) > 1


@pytest.mark.parametrize(
    "exception_type",
    [
        "throttlingException",
        "modelStreamErrorException",
        "internalServerException",
        "serviceUnavailableException",
        "validationException",
    ],
)
def test_mid_stream_exception_raises_event_stream_error(
    bedrock: BedrockEmulator, client: BaseClient, exception_type: str
) -> None:
    bedrock.set_faults(
        stream_exception_after_events=3,
        stream_exception_type=exception_type,
        stream_exception_message="boom",
    )
    response = client.converse_stream(modelId=HAIKU, messages=[user("Hello there")])
    received = []
    with pytest.raises(EventStreamError) as info:
        for event in response["stream"]:
            validate_event(client, event)
            received.append(event)
    assert len(received) == 3
    assert info.value.response["Error"]["Code"] == exception_type
    assert info.value.response["Error"]["Message"] == "boom"
    assert bedrock.stats()["errors"][exception_type] == 1


def test_exception_before_the_first_event(bedrock: BedrockEmulator, client: BaseClient) -> None:
    bedrock.set_faults(stream_exception_after_events=0)
    response = client.converse_stream(modelId=HAIKU, messages=[user("Hello")])
    with pytest.raises(EventStreamError) as info:
        list(response["stream"])
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_stream_validation_errors_are_http_errors(client: BaseClient) -> None:
    with pytest.raises(client.exceptions.ValidationException):
        client.converse_stream(modelId=HAIKU, messages=[user("a"), user("b")])


# ----------------------------------------------------------------------- timing model


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockEmulator]:
    catalog = {"models": [{"id": HAIKU, "ttft_ms": 150, "output_tokens_per_s": 400}]}
    sim = start_bedrock(tmp_path_factory.mktemp("bedrock-paced"), "--no-auth", catalog=catalog)
    try:
        yield sim
    finally:
        sim.server.stop()


def test_time_to_first_token_and_token_rate(paced: BedrockEmulator) -> None:
    client = paced.client()
    started = time.monotonic()
    response = client.converse_stream(
        modelId=HAIKU, messages=[user("Hello")], inferenceConfig={"maxTokens": 20}
    )
    stream = iter(response["stream"])
    first = next(stream)
    first_at = time.monotonic() - started
    rest = list(stream)
    total = time.monotonic() - started
    assert "messageStart" in first
    deltas = sum(1 for e in rest if "contentBlockDelta" in e)
    assert deltas == 20
    assert first_at >= 0.15
    assert total >= 0.15 + 19 / 400
    assert rest[-1]["metadata"]["metrics"]["latencyMs"] >= 150 + 19 * 1000 // 400 - 1
    started = time.monotonic()
    whole = client.converse(
        modelId=HAIKU, messages=[user("Hello")], inferenceConfig={"maxTokens": 20}
    )
    assert time.monotonic() - started >= 0.15 + 19 / 400
    assert whole["metrics"]["latencyMs"] >= 150
