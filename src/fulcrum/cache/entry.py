"""The stored value: a complete non-streaming answer and the facts accounting needs about it.

Serialised compactly as ``MAGIC | header JSON | "\\n" | body``: the body is kept as the exact
bytes the upstream (or the stream assembler) produced, never re-encoded or base64'd, and the
header is a short JSON array. Compact JSON never contains a raw newline (JSON escapes them in
strings), so the first newline after the header ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from fulcrum.providers.base import Usage

MAGIC = b"FC1\n"
"""Format tag: a value written by another format version decodes as None (a miss)."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached answer."""

    body: bytes  # the complete non-streaming response body, as the client would receive it
    usage: Usage | None  # what producing it cost upstream (saved by every hit)
    created: float  # when it was stored, seconds since the epoch
    alias: str  # the model alias it answers
    deployment: str  # the deployment that produced it (prices the saving)


def encode_entry(entry: CacheEntry) -> bytes:
    usage = entry.usage
    counts = (
        None
        if usage is None
        else [
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens,
        ]
    )
    header = orjson.dumps([entry.created, entry.alias, entry.deployment, counts])
    return b"".join((MAGIC, header, b"\n", entry.body))


def decode_entry(data: bytes) -> CacheEntry | None:
    """The entry, or None when ``data`` is not an entry of this format (corrupt or foreign)."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        created, alias, deployment, counts = orjson.loads(data[len(MAGIC) : end])
        if counts is None:
            usage = None
        else:
            inputs, outputs, cached, written = (int(count) for count in counts)
            usage = Usage(inputs, outputs, cached, written)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if not (
        isinstance(created, int | float) and isinstance(alias, str) and isinstance(deployment, str)
    ):
        return None
    return CacheEntry(data[end + 1 :], usage, float(created), alias, deployment)
