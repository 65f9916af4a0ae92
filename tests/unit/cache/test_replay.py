"""Stored answers replayed as streams the official openai SDK parses into the same answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion as TextCompletion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fulcrum.cache.assemble import assemble_completion
from fulcrum.cache.replay import fresh_body, replay_sse
from fulcrum.providers.sse import SseSplitter, event_data
from tests.unit.cache.common import sdk_chat_chunks, sdk_client

CHAT: dict[str, Any] = {
    "id": "chatcmpl-original",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "qwen-small",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Jupiter.\n\n  Definitely.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
}
TOOLS: dict[str, Any] = {
    **CHAT,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                    {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "[1]"}},
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}
TEXT: dict[str, Any] = {
    "id": "cmpl-original",
    "object": "text_completion",
    "created": 1_700_000_000,
    "model": "qwen-small",
    "choices": [{"index": 0, "text": "Once upon", "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def data_of(events: list[bytes]) -> list[Any]:
    """Our own minimal SSE reading: every event is one complete ``data:`` line."""
    splitter = SseSplitter()
    split = splitter.feed(b"".join(events))
    assert split == events and splitter.pending == b""
    payloads = [event_data(event) for event in split]
    assert payloads[-1] == b"[DONE]"
    return [orjson.loads(p) for p in payloads[:-1] if p is not None]


@pytest.mark.parametrize("include_usage", [False, True])
def test_every_replayed_chunk_is_a_valid_chat_completion_chunk(include_usage: bool) -> None:
    chunks = data_of(replay_sse(orjson.dumps(CHAT), include_usage))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert all(("usage" in chunk) == include_usage for chunk in chunks)
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == CHAT["usage"]
        assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert len({chunk["id"] for chunk in chunks}) == 1


@pytest.mark.parametrize("include_usage", [False, True])
def test_the_sdk_reads_the_stored_content_back(include_usage: bool) -> None:
    events = replay_sse(orjson.dumps(CHAT), include_usage)
    chunks = list(sdk_chat_chunks(events))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == CHAT["choices"][0]["message"]["content"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes[:-1] == [None] * (len(finishes) - 1)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].system_fingerprint == "fp_1"
    usage = chunks[-1].usage
    if include_usage:
        assert usage is not None and usage.total_tokens == 26
    else:
        assert usage is None


def test_replayed_tool_calls_accumulate_to_the_stored_ones() -> None:
    events = replay_sse(orjson.dumps(TOOLS), include_usage=True)
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in sdk_chat_chunks(events):
        state.handle_chunk(chunk)
    final = state.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in final.message.tool_calls]
    assert calls == [("t1", "a", "{}"), ("t2", "b", "[1]")]


@pytest.mark.parametrize("stored", [CHAT, TOOLS, TEXT], ids=["chat", "tools", "text"])
def test_replay_then_assemble_gives_the_stored_answer_back(stored: dict[str, Any]) -> None:
    events = replay_sse(orjson.dumps(stored), include_usage=True, completion_id="x", created=5)
    body = assemble_completion(events)
    assert body is not None
    again = orjson.loads(body)
    expected = {**stored, "id": "x", "created": 5}
    for choice in expected["choices"]:
        message = choice.get("message")
        if message is not None:  # null fields are not streamed, so they come back absent
            choice["message"] = {
                k: v for k, v in message.items() if v is not None or k == "content"
            }
    assert again == expected


def test_a_legacy_completion_replays_through_the_sdk() -> None:
    events = replay_sse(orjson.dumps(TEXT), include_usage=True)
    for chunk in data_of(events):
        # The SDK types a chunk as a Completion, whose finish_reason may not be null; it
        # parses chunks without validating them, so only the finishing ones can be checked.
        if all(choice["finish_reason"] is not None for choice in chunk["choices"]):
            TextCompletion.model_validate(chunk)
    client = sdk_client(events)
    chunks = list(client.completions.create(model="qwen-small", prompt="Once", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Once upon"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


def test_each_replay_gets_a_fresh_id_and_created_time() -> None:
    body = orjson.dumps(CHAT)
    first = data_of(replay_sse(body, False))[0]
    second = data_of(replay_sse(body, False))[0]
    assert first["id"] != second["id"] != CHAT["id"]
    assert first["id"].startswith("chatcmpl-")
    assert first["created"] > CHAT["created"]
    pinned = data_of(replay_sse(body, False, completion_id="chatcmpl-req-7", created=42))[0]
    assert (pinned["id"], pinned["created"]) == ("chatcmpl-req-7", 42)


def test_a_fresh_body_changes_only_the_id_and_created_time() -> None:
    renewed = orjson.loads(fresh_body(orjson.dumps(CHAT)))
    assert renewed["id"] != CHAT["id"] and renewed["id"].startswith("chatcmpl-")
    assert {**renewed, "id": CHAT["id"], "created": CHAT["created"]} == CHAT
    ChatCompletion.model_validate(renewed)
    text = orjson.loads(fresh_body(orjson.dumps(TEXT), "cmpl-9", 7))
    assert (text["id"], text["created"]) == ("cmpl-9", 7)


def test_an_embeddings_body_is_served_as_it_is_and_cannot_be_streamed() -> None:
    body = orjson.dumps({"object": "list", "data": [{"embedding": [0.5]}], "model": "e"})
    assert fresh_body(body) is body
    with pytest.raises(ValueError, match="cannot stream"):
        replay_sse(body, False)
