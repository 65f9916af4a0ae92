"""Server-sent events as OpenAI-compatible servers send them: split, inspect, rewrite.

Pure functions and one small incremental splitter. The hot path never parses a chunk's JSON
unless the raw bytes show a ``"usage": {...}`` object, which (JSON strings escape their quotes)
can only appear as a key, so content that merely mentions usage is never mistaken for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from fulcrum.providers.base import Usage

DONE_EVENT = b"data: [DONE]\n\n"
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')


class SseSplitter:
    """Accumulates bytes and returns complete events (each ending in a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            events.append(buffer[start : end + 2])
            start = end + 2
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an incomplete event, if the stream ended in the middle of one."""
        return self._buffer


def has_usage(event: bytes) -> bool:
    """True when the event carries a usage object (not ``null``)."""
    return any(marker in event for marker in _USAGE_MARKERS)


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` payload of one event, or None if it has none."""
    parts = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    if not parts:
        return None
    return b"\n".join(parts)


def is_done(event: bytes) -> bool:
    return event == DONE_EVENT or event_data(event) == b"[DONE]"


def usage_from_object(usage: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object, tolerating absent optional parts."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(cached),
    )


def _count(value: Any) -> int:
    """A token count from an upstream; anything that is not a number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, int(value))


def take_usage(event: bytes, forward_usage: bool) -> tuple[Usage | None, bytes | None]:
    """Read the usage of a usage-bearing event; return it and what to forward (None: drop).

    When the client did not ask for usage, a usage-only chunk (no choices) is dropped and a
    chunk that also carries choices is forwarded without its usage.
    """
    payload = event_data(event)
    if payload is None:
        return None, event
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, event
    if not isinstance(chunk, dict):
        return None, event
    usage = usage_from_object(chunk.get("usage"))
    if forward_usage:
        return usage, event
    if not chunk.get("choices"):
        return usage, None
    chunk.pop("usage", None)
    return usage, b"data: " + orjson.dumps(chunk) + b"\n\n"
