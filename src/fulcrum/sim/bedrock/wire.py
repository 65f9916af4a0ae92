"""Response bodies and stream events, in the shapes of the Bedrock Runtime service model.

Converse: ``{"output": {"message": {"role": "assistant", "content": [...]}}, "stopReason",
"usage": {...}, "metrics": {"latencyMs"}}``. ConverseStream, in order: ``messageStart``; per
text block ``contentBlockDelta``\\* then ``contentBlockStop`` (no ``contentBlockStart`` for
text); per tool call ``contentBlockStart`` (``start.toolUse``), ``contentBlockDelta``\\* with
partial-JSON ``delta.toolUse.input`` strings, ``contentBlockStop``; ``messageStop``;
``metadata``. Every event payload carries Bedrock's random ``p`` padding.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.bedrock.eventstream import encode_message, event_headers
from fulcrum.sim.bedrock.generation import PADDING_ALPHABET
from fulcrum.sim.bedrock.planner import Reply


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    caching: bool = False
    """Whether a cache checkpoint took effect (the cache fields are reported only then)."""

    def to_json(self) -> dict[str, int]:
        total = self.input + self.output + self.cache_read + self.cache_write
        usage = {"inputTokens": self.input, "outputTokens": self.output, "totalTokens": total}
        if self.caching:
            usage["cacheReadInputTokens"] = self.cache_read
            usage["cacheWriteInputTokens"] = self.cache_write
        return usage


def content_blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text is not None:
        blocks.append({"text": reply.text})
    if reply.tool is not None:
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": reply.tool.tool_use_id,
                    "name": reply.tool.name,
                    "input": reply.tool.input,
                }
            }
        )
    return blocks


def converse_body(reply: Reply, usage: TokenUsage, latency_ms: int, echo: dict[str, Any]) -> bytes:
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": content_blocks(reply)}},
        "stopReason": reply.stop_reason,
        "usage": usage.to_json(),
        "metrics": {"latencyMs": latency_ms},
    }
    body.update(echo)
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event_type: str
    payload: dict[str, Any]
    token: bool
    """True for events that carry a generated token (paced by the timing model)."""


def stream_events(reply: Reply) -> Iterator[StreamEvent]:
    """The events of a ConverseStream reply, ``messageStart`` .. ``messageStop``."""
    yield StreamEvent("messageStart", {"role": "assistant"}, False)
    index = 0
    if reply.text is not None:
        for piece in reply.text_pieces():
            yield StreamEvent(
                "contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}}, True
            )
        yield StreamEvent("contentBlockStop", {"contentBlockIndex": index}, False)
        index += 1
    if reply.tool is not None:
        tool = reply.tool
        yield StreamEvent(
            "contentBlockStart",
            {
                "contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": tool.tool_use_id, "name": tool.name}},
            },
            False,
        )
        for piece in reply.input_pieces():
            yield StreamEvent(
                "contentBlockDelta",
                {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}},
                True,
            )
        yield StreamEvent("contentBlockStop", {"contentBlockIndex": index}, False)
    yield StreamEvent("messageStop", {"stopReason": reply.stop_reason}, False)


def metadata_payload(usage: TokenUsage, latency_ms: int, echo: dict[str, Any]) -> dict[str, Any]:
    return {"usage": usage.to_json(), "metrics": {"latencyMs": latency_ms}, **echo}


_PADDING_SUFFIXES = tuple(
    f',"p":"{PADDING_ALPHABET[:n]}"}}'.encode() for n in range(1, len(PADDING_ALPHABET) + 1)
)
"""``,"p":"<padding>"}`` for every padding length: appended to a payload stem."""


@dataclass(frozen=True, slots=True)
class Stem:
    """A stream event serialised once: its header block and its JSON without the final ``}``.

    Replies are memoised, so a repeated request only pays for padding and framing.
    """

    headers: bytes
    body: bytes
    token: bool


def stem(event_type: str, payload: dict[str, Any], token: bool = False) -> Stem:
    return Stem(event_headers(event_type), orjson.dumps(payload)[:-1], token)


def stems(reply: Reply) -> tuple[Stem, ...]:
    """The stems of a reply's events, ``messageStart`` .. ``messageStop``."""
    return tuple(stem(e.event_type, e.payload, e.token) for e in stream_events(reply))


def padded(item: Stem, rng: random.Random) -> bytes:
    """One event-stream message with Bedrock's random ``p`` padding added to the payload."""
    suffix = _PADDING_SUFFIXES[int(rng.random() * len(_PADDING_SUFFIXES))]
    return encode_message(item.headers, item.body + suffix)


def frame(event_type: str, payload: dict[str, Any], rng: random.Random) -> bytes:
    """One event-stream message for an event, with the random ``p`` padding added."""
    return padded(stem(event_type, payload), rng)


def embedding_body(
    vector: tuple[float, ...], binary: list[int] | None, include_float: bool, tokens: int
) -> bytes:
    by_type: dict[str, Any] = {}
    if include_float:
        by_type["float"] = vector
    if binary is not None:
        by_type["binary"] = binary
    return orjson.dumps(
        {"embedding": vector, "embeddingsByType": by_type, "inputTextTokenCount": tokens}
    )
