"""The AWS event-stream binary framing (``application/vnd.amazon.eventstream``), encoder side.

One message on the wire::

    total length   uint32 big-endian  (whole message, both CRCs included)
    headers length uint32 big-endian
    prelude CRC    uint32 big-endian  CRC-32 of the 8 bytes above
    headers        repeated: name length (uint8), name (UTF-8), value type (uint8),
                   then for type 7 (string): value length (uint16 big-endian), value (UTF-8)
    payload        bytes (here: JSON)
    message CRC    uint32 big-endian  CRC-32 of everything before it (prelude CRC included)

CRC-32 is the IEEE polynomial (``zlib.crc32``). Bedrock sends events with the headers
``:event-type``, ``:content-type`` (``application/json``) and ``:message-type`` (``event``);
modelled exceptions with ``:exception-type`` and ``:message-type`` ``exception``. Everything here
is a pure function; the header block of each event type is computed once.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Sequence

STRING_TYPE = 7
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024
"""botocore's decoder limits (``botocore.eventstream``): larger messages are rejected."""

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_PRELUDE_AND_CRC = 12
_TRAILER = 4

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def encode_headers(headers: Sequence[tuple[str, str]]) -> bytes:
    """The header block for string-valued headers, in the given order."""
    out = bytearray()
    for name, value in headers:
        raw_name = name.encode("utf-8")
        raw_value = value.encode("utf-8")
        if not 0 < len(raw_name) < 256:
            raise ValueError(f"header name must be 1..255 bytes: {name!r}")
        if len(raw_value) > 0x7FFF:
            raise ValueError(f"header value too long for {name!r}")
        out.append(len(raw_name))
        out += raw_name
        out.append(STRING_TYPE)
        out += struct.pack(">H", len(raw_value))
        out += raw_value
    return bytes(out)


def encode_message(headers: bytes, payload: bytes) -> bytes:
    """One framed message from an encoded header block and a payload."""
    header_length = len(headers)
    if header_length > MAX_HEADERS_LENGTH:
        raise ValueError("header block exceeds 128 KiB")
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ValueError("payload exceeds 16 MiB")
    prelude = _PRELUDE.pack(
        _PRELUDE_AND_CRC + header_length + len(payload) + _TRAILER, header_length
    )
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + headers + payload
    return message + _CRC.pack(zlib.crc32(message))


@functools.lru_cache(maxsize=64)
def event_headers(event_type: str) -> bytes:
    """The header block of an ``event`` message of ``event_type`` (cached per type)."""
    return encode_headers(
        (
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        )
    )


@functools.lru_cache(maxsize=64)
def exception_headers(exception_type: str) -> bytes:
    """The header block of a modelled exception message (``:exception-type``)."""
    return encode_headers(
        (
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        )
    )


def event_frame(event_type: str, payload: bytes) -> bytes:
    """A complete ``event`` message."""
    return encode_message(event_headers(event_type), payload)


def exception_frame(exception_type: str, payload: bytes) -> bytes:
    """A complete ``exception`` message (the stream ends after it)."""
    return encode_message(exception_headers(exception_type), payload)
