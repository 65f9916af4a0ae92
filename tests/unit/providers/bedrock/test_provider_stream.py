"""BedrockStream: event-stream bytes from Bedrock → OpenAI SSE bytes, and its failures.

The HTTP response is a stand-in that hands out fixed byte chunks (as ``readany`` would), so
these tests cover the provider's stream logic without a server.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fulcrum.api.errors import UpstreamError
from fulcrum.providers.base import Usage
from fulcrum.providers.bedrock.provider import BedrockStream
from fulcrum.providers.bedrock.responses import StreamTranslator
from fulcrum.providers.sse import DONE_EVENT
from fulcrum.schema.openai import Endpoint, InferenceRequest
from tests.unit.providers.bedrock._eventstream import event, exception


class FakeContent:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)

    async def readany(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


class FakeResponse:
    def __init__(self, chunks: list[bytes]) -> None:
        self.content = FakeContent(chunks)
        self.released = False
        self.closed = False

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


def open_stream(
    chunks: list[bytes], forward_usage: bool = True
) -> tuple[BedrockStream, FakeResponse]:
    response = FakeResponse(chunks)
    translator = StreamTranslator(completion_id="chatcmpl-x", created=1, model="claude")
    request = InferenceRequest(
        Endpoint.CHAT,
        "alias",
        {"messages": [{"role": "user", "content": "hello there"}]},
        stream=True,
        client_wants_usage=forward_usage,
    )
    stream = BedrockStream("bd", response, translator, request)  # type: ignore[arg-type]
    return stream, response


async def drain(stream: BedrockStream) -> bytes:
    await stream.prime()
    return b"".join([piece async for piece in stream])


def sse_payloads(data: bytes) -> list[Any]:
    assert data.endswith(DONE_EVENT)
    frames = [f for f in data[: -len(DONE_EVENT)].split(b"\n\n") if f]
    assert all(frame.startswith(b"data: ") for frame in frames)
    return [orjson.loads(frame[len(b"data: ") :]) for frame in frames]


START = event("messageStart", {"role": "assistant"})
TEXT = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}})
STOP_BLOCK = event("contentBlockStop", {"contentBlockIndex": 0})
STOP = event("messageStop", {"stopReason": "end_turn"})
METADATA = event(
    "metadata",
    {"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 9}},
)
WHOLE = START + TEXT + STOP_BLOCK + STOP + METADATA


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([WHOLE], id="one-read"),
        pytest.param([START, TEXT, STOP_BLOCK, STOP, METADATA], id="read-per-event"),
        pytest.param([WHOLE[:7], WHOLE[7:100], WHOLE[100:]], id="odd-splits"),
    ],
)
async def test_stream_to_sse(chunks: list[bytes]) -> None:
    stream, response = open_stream(chunks)
    payloads = sse_payloads(await drain(stream))
    assert [p["choices"][0]["delta"] for p in payloads[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {},
    ]
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["usage"]["total_tokens"] == 7
    assert stream.completed
    assert stream.usage == Usage(input_tokens=5, output_tokens=2)
    await stream.aclose()
    assert response.released and not response.closed


async def test_usage_chunk_withheld_when_not_asked_but_still_accounted() -> None:
    stream, _ = open_stream([WHOLE], forward_usage=False)
    payloads = sse_payloads(await drain(stream))
    assert all("usage" not in p for p in payloads)
    assert stream.usage == Usage(input_tokens=5, output_tokens=2)


async def test_stream_without_metadata_ends_cleanly_after_message_stop() -> None:
    stream, _ = open_stream([START + TEXT + STOP])
    payloads = sse_payloads(await drain(stream))
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.completed
    assert stream.usage is None


@pytest.mark.parametrize(
    ("name", "status", "retryable"),
    [
        pytest.param("throttlingException", 429, True, id="throttling"),
        pytest.param("serviceUnavailableException", 503, True, id="unavailable"),
        pytest.param("internalServerException", 500, True, id="internal"),
        pytest.param("validationException", 400, False, id="validation"),
        pytest.param("modelStreamErrorException", 424, False, id="model-stream-error"),
    ],
)
async def test_exception_before_the_first_event_can_fail_over(
    name: str, status: int, retryable: bool
) -> None:
    stream, _ = open_stream([exception(name, "nope")])
    with pytest.raises(UpstreamError) as info:
        await stream.prime()
    assert (info.value.status, info.value.retryable) == (status, retryable)
    assert "nope" in info.value.message


@pytest.mark.parametrize(
    ("name", "status"),
    [
        pytest.param("throttlingException", 429, id="throttling"),
        pytest.param("modelStreamErrorException", 424, id="model-stream-error"),
    ],
)
async def test_exception_mid_stream_ends_it_and_is_not_retryable(name: str, status: int) -> None:
    stream, response = open_stream([START, TEXT, exception(name, "broke mid-way")])
    await stream.prime()
    received = []
    with pytest.raises(UpstreamError) as info:
        async for piece in stream:
            received.append(piece)
    assert b"Hello" in b"".join(received)  # the client already had bytes: too late to retry
    assert (info.value.status, info.value.retryable) == (status, False)
    assert info.value.code == name[0].upper() + name[1:]
    assert info.value.sse_event().startswith(b'data: {"error"')
    assert not stream.completed
    await stream.aclose()
    assert response.closed


async def test_stream_cut_before_message_stop_is_an_error() -> None:
    stream, _ = open_stream([START, TEXT])
    await stream.prime()
    with pytest.raises(UpstreamError) as info:
        async for _ in stream:
            pass
    assert (info.value.status, info.value.retryable) == (502, False)


async def test_stream_closed_before_first_event_is_retryable() -> None:
    stream, _ = open_stream([])
    with pytest.raises(UpstreamError) as info:
        await stream.prime()
    assert (info.value.status, info.value.retryable) == (502, True)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


async def test_corrupt_event_stream_becomes_an_upstream_error() -> None:
    """A CRC mismatch mid-stream must end the client's stream with an OpenAI-style error."""
    stream, _ = open_stream([START, _flip(TEXT, len(TEXT) - 10)])
    await stream.prime()
    with pytest.raises(UpstreamError) as info:
        async for _ in stream:
            pass
    assert info.value.status == 502
    assert info.value.code == "upstream_stream_error"


async def test_corrupt_first_event_becomes_an_upstream_error() -> None:
    stream, _ = open_stream([_flip(START, len(START) - 1)])
    with pytest.raises(UpstreamError) as info:
        await stream.prime()
    assert info.value.status == 502
