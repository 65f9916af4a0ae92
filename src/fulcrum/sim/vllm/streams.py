"""The SSE events of a streamed chat or completion, one generation step at a time.

Step ``k`` releases token ``k`` of every choice that still has one, each in its own chunk (as
vLLM sends one chunk per choice per engine step). Chat streams open with one ``role`` chunk per
choice. A choice's last token rides in the chunk that carries its ``finish_reason`` and
``stop_reason``. After the last step come the usage chunk (only with
``stream_options.include_usage``) and ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def steps_of(token_counts: Sequence[int]) -> int:
    """Number of generation steps: the longest choice's token count."""
    return max(token_counts, default=0)


def chat_step(meta: StreamMeta, choices: Sequence[ChatChoice], step: int) -> list[bytes]:
    """Events released at generation step ``step`` of a chat stream."""
    events: list[bytes] = []
    if step == 0:
        for choice in choices:
            role_usage = wire.usage(meta.prompt_tokens, 0, False) if meta.continuous_usage else None
            events.append(
                wire.sse(
                    wire.chat_chunk(
                        meta.request_id,
                        meta.created,
                        meta.model,
                        choice.index,
                        {"role": "assistant", "content": ""},
                        chunk_usage=role_usage,
                    )
                )
            )
    for choice in choices:
        count = choice.output.num_tokens
        if step >= count:
            continue
        last = step == count - 1
        logprobs = None
        if choice.logprobs is not None:
            logprobs = wire.chat_logprobs([choice.logprobs[step]])
        step_usage = None
        if meta.continuous_usage:
            step_usage = wire.usage(meta.prompt_tokens, step + 1, False)
        events.append(
            wire.sse(
                wire.chat_chunk(
                    meta.request_id,
                    meta.created,
                    meta.model,
                    choice.index,
                    wire.chat_delta(choice, step),
                    logprobs=logprobs,
                    finish_reason=choice.finish_reason if last else None,
                    stop_reason=choice.output.stop_reason if last else None,
                    final=last,
                    chunk_usage=step_usage,
                )
            )
        )
    return events


def chat_tail(meta: StreamMeta, choices: Sequence[ChatChoice], include_usage: bool) -> list[bytes]:
    """The usage chunk (when asked for) and ``[DONE]``."""
    events: list[bytes] = []
    if include_usage:
        completion = sum(c.output.num_tokens for c in choices)
        events.append(
            wire.sse(
                wire.usage_chunk(
                    "chat.completion.chunk",
                    meta.request_id,
                    meta.created,
                    meta.model,
                    meta.prompt_tokens,
                    completion,
                )
            )
        )
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


def completion_step(
    meta: StreamMeta,
    choices: Sequence[CompletionChoice],
    step: int,
    offsets: Sequence[Sequence[int]] | None = None,
) -> list[bytes]:
    """Events released at generation step ``step`` of a completion stream."""
    events: list[bytes] = []
    for position, choice in enumerate(choices):
        count = choice.output.num_tokens
        if step >= count:
            continue
        last = step == count - 1
        text = choice.output.pieces[step]
        if step == 0 and choice.prefix:
            text = choice.prefix + text
        logprobs = None
        if choice.logprobs is not None:
            start = offsets[position][step] if offsets is not None else 0
            logprobs = wire.completion_logprobs([choice.logprobs[step]], start)
        step_usage = None
        if meta.continuous_usage:
            step_usage = wire.usage(meta.prompt_tokens, step + 1, False)
        events.append(
            wire.sse(
                wire.completion_chunk(
                    meta.request_id,
                    meta.created,
                    meta.model,
                    choice.index,
                    text,
                    logprobs=logprobs,
                    finish_reason=choice.output.finish_reason if last else None,
                    stop_reason=choice.output.stop_reason if last else None,
                    chunk_usage=step_usage,
                )
            )
        )
    return events


def completion_tail(
    meta: StreamMeta, choices: Sequence[CompletionChoice], include_usage: bool
) -> list[bytes]:
    """The usage chunk (when asked for) and ``[DONE]``."""
    events: list[bytes] = []
    if include_usage:
        completion = sum(c.output.num_tokens for c in choices)
        events.append(
            wire.sse(
                wire.usage_chunk(
                    "text_completion",
                    meta.request_id,
                    meta.created,
                    meta.model,
                    meta.prompt_tokens,
                    completion,
                )
            )
        )
    events.append(wire.DONE)
    return events
