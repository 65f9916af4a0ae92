"""The SSE events of a streamed chat or completion, one generation step at a time.

Step ``k`` releases token ``k`` of every choice that still has one, each in its own chunk (as
vLLM sends one chunk per choice per engine step). Chat streams open with one ``role`` chunk per
choice. A choice's last token rides in the chunk that carries its ``finish_reason`` and
``stop_reason``. After the last step come the usage chunk (only with
``stream_options.include_usage``) and ``data: [DONE]``.

Plain content chunks (no logprobs, no per-chunk usage, not the last of a choice) are the bulk
of every stream, so their bytes come from a per-choice template split around the text; the
template is cut from a chunk built the ordinary way, so both paths emit identical JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.vllm import wire
from fulcrum.sim.vllm.wire import ChatChoice, CompletionChoice


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """What every chunk of one stream repeats."""

    request_id: str
    created: int
    model: str
    prompt_tokens: int
    continuous_usage: bool


_SENTINEL = "\u2063fulcrum-sentinel\u2063"
_SENTINEL_JSON = orjson.dumps(_SENTINEL)


def _template(event: bytes) -> tuple[bytes, bytes]:
    """Split an SSE event built around the sentinel into (before, after) the text value."""
    before, found, after = event.partition(_SENTINEL_JSON)
    assert found, "sentinel missing from template"
    return before, after


def steps_of(token_counts: Sequence[int]) -> int:
    """Number of generation steps: the longest choice's token count."""
    return max(token_counts, default=0)


class ChatStream:
    """Builds the events of one streamed chat completion."""

    def __init__(self, meta: StreamMeta, choices: Sequence[ChatChoice]) -> None:
        self.meta = meta
        self.choices = choices
        self._templates: dict[int, tuple[bytes, bytes]] = {}
        if not meta.continuous_usage:
            for choice in choices:
                if choice.logprobs is None and choice.tool is None:
                    event = self._event(choice.index, {"content": _SENTINEL})
                    self._templates[choice.index] = _template(event)

    def _event(self, index: int, delta: dict[str, Any], **fields: Any) -> bytes:
        m = self.meta
        return wire.sse(wire.chat_chunk(m.request_id, m.created, m.model, index, delta, **fields))

    def step(self, step: int) -> list[bytes]:
        """Events released at generation step ``step`` (the first also opens each choice)."""
        meta = self.meta
        events: list[bytes] = []
        if step == 0:
            role_usage = wire.usage(meta.prompt_tokens, 0, False) if meta.continuous_usage else None
            for choice in self.choices:
                delta = {"role": "assistant", "content": ""}
                events.append(self._event(choice.index, delta, chunk_usage=role_usage))
        for choice in self.choices:
            count = choice.output.num_tokens
            if step >= count:
                continue
            last = step == count - 1
            template = self._templates.get(choice.index)
            if template is not None and not last:
                piece = orjson.dumps(choice.output.pieces[step])
                events.append(template[0] + piece + template[1])
                continue
            logprobs = None
            if choice.logprobs is not None:
                logprobs = wire.chat_logprobs([choice.logprobs[step]])
            step_usage = None
            if meta.continuous_usage:
                step_usage = wire.usage(meta.prompt_tokens, step + 1, False)
            events.append(
                self._event(
                    choice.index,
                    wire.chat_delta(choice, step),
                    logprobs=logprobs,
                    finish_reason=choice.finish_reason if last else None,
                    stop_reason=choice.output.stop_reason if last else None,
                    final=last,
                    chunk_usage=step_usage,
                )
            )
        return events

    def tail(self, include_usage: bool) -> list[bytes]:
        """The usage chunk (when asked for) and ``[DONE]``."""
        meta = self.meta
        events: list[bytes] = []
        if include_usage:
            completion = sum(c.output.num_tokens for c in self.choices)
            chunk = wire.usage_chunk(
                "chat.completion.chunk",
                meta.request_id,
                meta.created,
                meta.model,
                meta.prompt_tokens,
                completion,
            )
            events.append(wire.sse(chunk))
        events.append(wire.DONE)
        return events


def text_offsets(choice: CompletionChoice) -> list[int]:
    """Character offset of every token of a completion choice (after its echoed prefix)."""
    offsets: list[int] = []
    offset = len(choice.prefix)
    for token in choice.output.tokens:
        offsets.append(offset)
        offset += len(token)
    return offsets


class CompletionStream:
    """Builds the events of one streamed (legacy) completion."""

    def __init__(self, meta: StreamMeta, choices: Sequence[CompletionChoice]) -> None:
        self.meta = meta
        self.choices = choices
        self._offsets = [text_offsets(c) if c.logprobs is not None else [] for c in choices]
        self._templates: dict[int, tuple[bytes, bytes]] = {}
        if not meta.continuous_usage:
            for choice in choices:
                if choice.logprobs is None:
                    self._templates[choice.index] = _template(self._event(choice.index, _SENTINEL))

    def _event(self, index: int, text: str, **fields: Any) -> bytes:
        m = self.meta
        chunk = wire.completion_chunk(m.request_id, m.created, m.model, index, text, **fields)
        return wire.sse(chunk)

    def step(self, step: int) -> list[bytes]:
        """Events released at generation step ``step``."""
        meta = self.meta
        events: list[bytes] = []
        for position, choice in enumerate(self.choices):
            count = choice.output.num_tokens
            if step >= count:
                continue
            last = step == count - 1
            text = choice.output.pieces[step]
            if step == 0 and choice.prefix:
                text = choice.prefix + text
            template = self._templates.get(choice.index)
            if template is not None and not last:
                events.append(template[0] + orjson.dumps(text) + template[1])
                continue
            logprobs = None
            if choice.logprobs is not None:
                start = self._offsets[position][step]
                logprobs = wire.completion_logprobs([choice.logprobs[step]], start)
            step_usage = None
            if meta.continuous_usage:
                step_usage = wire.usage(meta.prompt_tokens, step + 1, False)
            events.append(
                self._event(
                    choice.index,
                    text,
                    logprobs=logprobs,
                    finish_reason=choice.output.finish_reason if last else None,
                    stop_reason=choice.output.stop_reason if last else None,
                    chunk_usage=step_usage,
                )
            )
        return events

    def tail(self, include_usage: bool) -> list[bytes]:
        """The usage chunk (when asked for) and ``[DONE]``."""
        meta = self.meta
        events: list[bytes] = []
        if include_usage:
            completion = sum(c.output.num_tokens for c in self.choices)
            chunk = wire.usage_chunk(
                "text_completion",
                meta.request_id,
                meta.created,
                meta.model,
                meta.prompt_tokens,
                completion,
            )
            events.append(wire.sse(chunk))
        events.append(wire.DONE)
        return events
