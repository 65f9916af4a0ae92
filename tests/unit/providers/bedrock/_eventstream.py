"""A small AWS event-stream encoder for tests, written from the framing spec.

A message is: prelude (total length, headers length: big-endian uint32 each), the prelude's
CRC32, the headers, the payload, and the CRC32 of everything before it. Headers here are all
strings (type 7): name length (uint8), name, type, value length (uint16), value.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

_STRING = 7


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """A ConverseStream event as Bedrock frames it (with the random ``p`` padding field)."""
    return encode_message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        orjson.dumps({**payload, "p": "abcdefghij"}),
    )


def exception(exception_type: str, message: str) -> bytes:
    """An exception Bedrock sends inside a 200 event stream (lower-camel type name)."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": message}),
    )
