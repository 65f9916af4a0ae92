"""Streams folded into complete answers, checked against the openai SDK's own accumulator."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion as TextCompletion
from openai.types.chat import ChatCompletion

from fulcrum.cache.assemble import StreamRecorder, assemble_completion
from fulcrum.providers.base import Usage
from fulcrum.providers.bedrock.responses import StreamTranslator
from fulcrum.sim.vllm.wire import chat_chunk, completion_chunk, usage_chunk
from tests.unit.cache.common import sdk_chat_chunks, sse

ID, CREATED, MODEL = "chatcmpl-abc", 1_767_225_600, "qwen-small"
WORDS = ["Jupiter", " is", " the", " largest", " planet", "."]


def vllm_chat_stream(*, usage: bool = True, done: bool = True) -> list[bytes]:
    """A chat stream as vLLM sends it (role first, one token per chunk, usage at the end)."""
    chunks = [chat_chunk(ID, CREATED, MODEL, 0, {"role": "assistant", "content": ""})]
    chunks += [chat_chunk(ID, CREATED, MODEL, 0, {"content": word}) for word in WORDS]
    chunks.append(
        chat_chunk(ID, CREATED, MODEL, 0, {}, finish_reason="stop", stop_reason=None, final=True)
    )
    if usage:
        chunks.append(usage_chunk("chat.completion.chunk", ID, CREATED, MODEL, 20, 6))
    return sse(*chunks, done=done)


def bedrock_tool_stream() -> list[bytes]:
    """A Converse stream with text and two tool calls, through the gateway's own translator."""
    translator = StreamTranslator(completion_id=ID, created=CREATED, model=MODEL)
    events: list[tuple[str, dict[str, Any]]] = [
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        (
            "contentBlockStart",
            {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "weather"}}},
        ),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"ci'}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ty":1}'}}}),
        (
            "contentBlockStart",
            {"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t2", "name": "time"}}},
        ),
        ("contentBlockDelta", {"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{}"}}}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39}}),
    ]
    chunks = [chunk for name, payload in events for chunk in translator.translate(name, payload)]
    return sse(*chunks)


def sdk_final(events: list[bytes]) -> ChatCompletion:
    """What the openai SDK itself accumulates from the same stream."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in sdk_chat_chunks(events):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def test_a_vllm_chat_stream_becomes_the_completion_the_sdk_accumulates() -> None:
    events = vllm_chat_stream()
    body = assemble_completion(events)
    assert body is not None
    ours = ChatCompletion.model_validate(orjson.loads(body))
    theirs = sdk_final(events)
    assert ours.id == theirs.id == ID
    assert ours.model == MODEL
    assert ours.choices[0].message.content == theirs.choices[0].message.content == "".join(WORDS)
    assert ours.choices[0].message.role == "assistant"
    assert ours.choices[0].finish_reason == theirs.choices[0].finish_reason == "stop"
    assert ours.usage is not None and theirs.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (20, 6)
    assert ours.usage == theirs.usage


def test_tool_call_deltas_are_merged_by_index() -> None:
    events = bedrock_tool_stream()
    body = assemble_completion(events)
    assert body is not None
    message = ChatCompletion.model_validate(orjson.loads(body)).choices[0].message
    theirs = sdk_final(events).choices[0].message
    assert message.content == theirs.content == "Checking."
    assert message.tool_calls is not None and theirs.tool_calls is not None
    got = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]  # type: ignore[union-attr]
    want = [(c.id, c.function.name, c.function.arguments) for c in theirs.tool_calls]  # type: ignore[union-attr]
    assert got == want == [("t1", "weather", '{"city":1}'), ("t2", "time", "{}")]
    parsed = orjson.loads(body)
    assert parsed["choices"][0]["finish_reason"] == "tool_calls"
    assert parsed["usage"]["total_tokens"] == 39


def test_a_stream_without_its_usage_chunk_takes_the_usage_given() -> None:
    body = assemble_completion(vllm_chat_stream(usage=False), Usage(20, 6, 4))
    assert body is not None
    usage = orjson.loads(body)["usage"]
    assert usage == {
        "prompt_tokens": 20,
        "completion_tokens": 6,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_the_streams_own_usage_wins_over_the_given_one() -> None:
    body = assemble_completion(vllm_chat_stream(), Usage(1, 1))
    assert body is not None
    assert orjson.loads(body)["usage"]["prompt_tokens"] == 20


def test_several_choices_logprobs_refusal_and_reasoning_are_kept() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"content": [{"token": token, "logprob": -0.1, "bytes": None, "top_logprobs": []}]}

    chunks = [
        chat_chunk(ID, CREATED, MODEL, 1, {"role": "assistant", "content": "B"}, logprobs=lp("B")),
        chat_chunk(ID, CREATED, MODEL, 0, {"role": "assistant", "reasoning_content": "hm"}),
        chat_chunk(ID, CREATED, MODEL, 0, {"content": "A"}, logprobs=lp("A")),
        chat_chunk(ID, CREATED, MODEL, 0, {"content": "a"}, logprobs=lp("a")),
        chat_chunk(ID, CREATED, MODEL, 1, {"refusal": "no"}, finish_reason="stop"),
        chat_chunk(ID, CREATED, MODEL, 0, {}, finish_reason="length", stop_reason=None, final=True),
    ]
    body = assemble_completion(sse(*chunks))
    assert body is not None
    parsed = orjson.loads(body)
    completion = ChatCompletion.model_validate(parsed)
    first, second = completion.choices
    assert (first.index, first.message.content, first.finish_reason) == (0, "Aa", "length")
    assert parsed["choices"][0]["message"]["reasoning_content"] == "hm"
    assert first.logprobs is not None and first.logprobs.content is not None
    assert [entry.token for entry in first.logprobs.content] == ["A", "a"]
    assert (second.message.content, second.message.refusal) == ("B", "no")
    assert "usage" not in parsed


def test_a_legacy_text_completion_stream_is_assembled() -> None:
    chunks = [completion_chunk("cmpl-1", CREATED, MODEL, 0, text) for text in ("Once", " upon")]
    chunks.append(completion_chunk("cmpl-1", CREATED, MODEL, 0, "", finish_reason="length"))
    chunks.append(usage_chunk("text_completion", "cmpl-1", CREATED, MODEL, 3, 2))
    body = assemble_completion(sse(*chunks))
    assert body is not None
    completion = TextCompletion.model_validate(orjson.loads(body))
    assert completion.object == "text_completion"
    assert (completion.choices[0].text, completion.choices[0].finish_reason) == (
        "Once upon",
        "length",
    )
    assert completion.usage is not None and completion.usage.total_tokens == 5


@pytest.mark.parametrize(
    "events",
    [
        pytest.param(vllm_chat_stream(done=False), id="no [DONE]"),
        pytest.param([*vllm_chat_stream()[:4], b"data: [DONE]\n\n"], id="no finish reason"),
        pytest.param(
            [
                *vllm_chat_stream()[:3],
                b'data: {"error":{"message":"boom","type":"upstream_error"}}\n\n',
                b"data: [DONE]\n\n",
            ],
            id="error event",
        ),
        pytest.param([*vllm_chat_stream()[:3], b"data: {not json\n\n"], id="garbage"),
        pytest.param([b"data: [DONE]\n\n"], id="empty"),
        pytest.param(
            sse({"object": "list", "data": []}),
            id="not a completion stream",
        ),
    ],
)
def test_an_unfinished_or_failed_stream_is_not_assembled(events: list[bytes]) -> None:
    assert assemble_completion(events) is None


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_the_recorder_accepts_the_stream_in_any_slices(cuts: list[int]) -> None:
    data = b"".join(vllm_chat_stream())
    whole = assemble_completion(vllm_chat_stream())
    recorder = StreamRecorder()
    start = 0
    for cut in sorted(min(cut, len(data)) for cut in cuts):
        recorder.feed(data[start:cut])
        start = max(start, cut)
    recorder.feed(data[start:])
    assert recorder.finish() == whole


def test_the_recorder_gives_up_once_the_text_cannot_fit() -> None:
    recorder = StreamRecorder(max_chars=10)
    for event in vllm_chat_stream():
        recorder.feed(event)
    assert recorder.abandoned
    assert recorder.finish() is None
    roomy = StreamRecorder(max_chars=len("".join(WORDS)))
    for event in vllm_chat_stream():
        roomy.feed(event)
    assert roomy.finish() is not None


def test_the_recorder_ignores_comments_and_what_follows_done() -> None:
    recorder = StreamRecorder()
    recorder.feed(b": keep-alive\n\n")
    for event in vllm_chat_stream():
        recorder.feed(event)
    recorder.feed(b'data: {"error":{"message":"late"}}\n\n')
    assert recorder.finish() is not None
