"""The stored value's compact serialisation."""

from __future__ import annotations

import pytest

from fulcrum.cache.entry import MAGIC, CacheEntry, decode_entry, encode_entry
from fulcrum.providers.base import Usage

BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"line\\nbreak"}}]}\n\n\x00tail'


@pytest.mark.parametrize("usage", [Usage(12, 5, 4, 1), None])
def test_an_entry_round_trips(usage: Usage | None) -> None:
    entry = CacheEntry(BODY, usage, 1_767_225_600.25, "small", "vllm-a")
    assert decode_entry(encode_entry(entry)) == entry


def test_the_body_is_stored_verbatim_after_a_short_header() -> None:
    entry = CacheEntry(BODY, Usage(12, 5), 1.0, "small", "vllm-a")
    encoded = encode_entry(entry)
    assert encoded.startswith(MAGIC)
    assert encoded.endswith(BODY)
    assert len(encoded) - len(BODY) < 60


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an entry",
        b'FC0\n[1.0,"a","d",null]\n{}',  # another format version
        MAGIC + b'[1.0,"a","d",null]',  # no end of header
        MAGIC + b'[1.0,"a"\n{}',  # broken header
        MAGIC + b'[1.0,"a","d",[1,2]]\n{}',  # usage of the wrong shape
        MAGIC + b'["yesterday","a","d",null]\n{}',
        MAGIC + b'{"created":1}\n{}',
    ],
)
def test_anything_else_decodes_as_none(data: bytes) -> None:
    assert decode_entry(data) is None
