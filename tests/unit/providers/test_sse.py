"""SSE splitting and usage extraction, table-driven."""

from __future__ import annotations

import orjson
import pytest

from fulcrum.providers.base import Usage
from fulcrum.providers.sse import SseSplitter, event_data, has_usage, is_done, take_usage

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([CHUNK + USAGE], [CHUNK, USAGE]),
        ([CHUNK[:10], CHUNK[10:]], [CHUNK]),
        ([CHUNK[:-1], CHUNK[-1:] + b"data: [DONE]\n\n"], [CHUNK, b"data: [DONE]\n\n"]),
        ([b"data: a\r\n\r", b"\ndata: b\r\n\r\n"], [b"data: a\n\n", b"data: b\n\n"]),
        ([b": keep-alive\n\n"], [b": keep-alive\n\n"]),
    ],
)
def test_splitter_returns_complete_events(pieces: list[bytes], expected: list[bytes]) -> None:
    splitter = SseSplitter()
    events = [event for piece in pieces for event in splitter.feed(piece)]
    assert events == expected
    assert splitter.pending == b""


def test_splitter_keeps_incomplete_tail() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: partial") == []
    assert splitter.pending == b"data: partial"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (USAGE, True),
        (b'data: {"usage": {"prompt_tokens": 1}}\n\n', True),
        (b'data: {"choices":[],"usage":null}\n\n', False),
        (b'data: {"delta":{"content":"the \\"usage\\":{ key"}}\n\n', False),
        (CHUNK, False),
    ],
)
def test_has_usage_only_for_usage_objects(event: bytes, expected: bool) -> None:
    assert has_usage(event) is expected


def test_is_done_and_event_data() -> None:
    assert is_done(b"data: [DONE]\n\n")
    assert is_done(b"data:[DONE]\n\n")
    assert not is_done(CHUNK)
    assert event_data(b"event: x\ndata: a\ndata: b\n\n") == b"a\nb"
    assert event_data(b": comment\n\n") is None


def test_usage_chunk_dropped_when_client_did_not_ask() -> None:
    usage, forwarded = take_usage(USAGE, forward_usage=False)
    assert usage == Usage(input_tokens=7, output_tokens=3)
    assert forwarded is None


def test_usage_chunk_forwarded_verbatim_when_client_asked() -> None:
    usage, forwarded = take_usage(USAGE, forward_usage=True)
    assert usage == Usage(input_tokens=7, output_tokens=3)
    assert forwarded == USAGE


def test_usage_removed_from_a_chunk_that_also_has_choices() -> None:
    event = (
        b'data: {"choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1}}}\n\n'
    )
    usage, forwarded = take_usage(event, forward_usage=False)
    assert usage == Usage(input_tokens=2, output_tokens=1, cached_tokens=1)
    assert forwarded is not None
    body = orjson.loads(forwarded[len(b"data: ") :])
    assert "usage" not in body
    assert body["choices"] == [{"index": 0, "delta": {}}]
