"""The event-stream encoder, checked by botocore's own decoder (CRCs included)."""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, EventStreamMessage

from fulcrum.sim.bedrock.eventstream import (
    encode_headers,
    encode_message,
    event_frame,
    exception_frame,
)


def _decode(data: bytes, chunk: int | None = None) -> list[EventStreamMessage]:
    buffer = EventStreamBuffer()
    messages: list[EventStreamMessage] = []
    step = chunk or len(data) or 1
    for start in range(0, len(data), step):
        buffer.add_data(data[start : start + step])
        messages.extend(buffer)
    return messages


def test_event_frame_round_trips_through_botocore() -> None:
    payload = orjson.dumps({"contentBlockIndex": 0, "delta": {"text": "héllo"}, "p": "abc"})
    (message,) = _decode(event_frame("contentBlockDelta", payload))
    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert message.payload == payload
    assert message.to_response_dict()["status_code"] == 200


def test_exception_frame_has_exception_headers() -> None:
    (message,) = _decode(exception_frame("throttlingException", b'{"message":"slow down"}'))
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "throttlingException"
    assert message.to_response_dict()["status_code"] == 400


def test_prelude_and_lengths_follow_the_spec() -> None:
    headers = encode_headers([(":event-type", "x")])
    frame = encode_message(headers, b"{}")
    total, header_len = struct.unpack(">II", frame[:8])
    assert total == len(frame) == 12 + len(headers) + 2 + 4
    assert header_len == len(headers)
    assert struct.unpack(">I", frame[8:12])[0] == zlib.crc32(frame[:8])
    assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4])
    # name length, name, type 7 (string), 2-byte value length, value
    assert headers == b"\x0b:event-type\x07\x00\x01x"


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_many_frames_split_anywhere_decode_in_order(chunk: int) -> None:
    frames = [event_frame("contentBlockDelta", orjson.dumps({"i": i})) for i in range(20)]
    frames.append(exception_frame("modelStreamErrorException", b'{"message":"x"}'))
    messages = _decode(b"".join(frames), chunk)
    assert [orjson.loads(m.payload).get("i") for m in messages[:-1]] == list(range(20))
    assert messages[-1].headers[":exception-type"] == "modelStreamErrorException"


def test_empty_payload_is_valid() -> None:
    (message,) = _decode(event_frame("messageStop", b""))
    assert message.payload == b""


@pytest.mark.parametrize("position", ["prelude", "headers", "payload", "message_crc"])
def test_botocore_detects_any_corruption(position: str) -> None:
    frame = bytearray(event_frame("messageStart", b'{"role":"assistant"}'))
    index = {
        "prelude": 5,  # inside the headers-length field: the prelude CRC no longer matches
        "headers": 14,
        "payload": len(frame) - 6,
        "message_crc": len(frame) - 1,
    }[position]
    frame[index] ^= 0x01
    with pytest.raises(ChecksumMismatch):
        _decode(bytes(frame))


def test_invalid_headers_are_rejected() -> None:
    with pytest.raises(ValueError, match="header name"):
        encode_headers([("", "x")])
    with pytest.raises(ValueError, match="too long"):
        encode_headers([("a", "x" * 40_000)])
    with pytest.raises(ValueError, match="16 MiB"):
        encode_message(b"", b"x" * (16 * 1024 * 1024 + 1))
