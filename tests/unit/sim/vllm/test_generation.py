"""Deterministic generation: same request, same tokens; limits and stop strings as in vLLM."""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

from fulcrum.sim.vllm import generation as gen
from fulcrum.sim.vllm import tokenizer as tok

NATURAL = (16, 64)


def _seed(index: int = 0, seed: int | None = None, prompt: bytes = b"hello") -> int:
    return gen.request_seed("m", prompt, seed, index)


def test_seed_depends_on_every_input() -> None:
    base = _seed()
    assert base == _seed()
    assert base != _seed(index=1)
    assert base != _seed(seed=7)
    assert base != _seed(prompt=b"other")
    assert base != gen.request_seed("other-model", b"hello", None, 0)


def test_canonical_json_ignores_key_order() -> None:
    assert gen.canonical_json({"a": 1, "b": 2}) == gen.canonical_json({"b": 2, "a": 1})


def test_text_output_is_deterministic_and_ends_with_eos_within_natural_range() -> None:
    limits = gen.Limits(max_tokens=1000)
    first = gen.text_output(_seed(), limits, NATURAL)
    assert first == gen.text_output(_seed(), limits, NATURAL)
    assert first.finish_reason == "stop"
    assert first.stop_reason is None
    assert first.tokens[-1] == tok.EOS_TEXT  # EOS is a generated token, counted in usage
    assert first.pieces[-1] == ""
    assert first.text.endswith(".")
    visible = first.num_tokens - 1
    assert NATURAL[0] <= visible <= NATURAL[1]
    assert tok.count_tokens(first.text) == visible


def test_different_choices_differ() -> None:
    limits = gen.Limits(max_tokens=1000)
    texts = {gen.text_output(_seed(i), limits, NATURAL).text for i in range(4)}
    assert len(texts) == 4


def test_max_tokens_truncates_to_a_prefix_with_finish_length() -> None:
    full = gen.text_output(_seed(), gen.Limits(max_tokens=1000), NATURAL)
    for limit in (1, 5, full.num_tokens - 2, full.num_tokens - 1):
        cut = gen.text_output(_seed(), gen.Limits(max_tokens=limit), NATURAL)
        assert cut.finish_reason == "length"
        assert cut.num_tokens == limit
        assert full.text.startswith(cut.text)
        assert cut.pieces == full.pieces[:limit]


def test_limit_equal_to_natural_length_plus_eos_still_stops() -> None:
    full = gen.text_output(_seed(), gen.Limits(max_tokens=1000), NATURAL)
    exact = gen.text_output(_seed(), gen.Limits(max_tokens=full.num_tokens), NATURAL)
    assert exact == full


def test_ignore_eos_generates_exactly_max_tokens() -> None:
    out = gen.text_output(_seed(), gen.Limits(max_tokens=300, ignore_eos=True), NATURAL)
    assert out.num_tokens == 300
    assert out.finish_reason == "length"
    assert tok.EOS_TEXT not in out.tokens


def test_min_tokens_postpones_eos() -> None:
    natural = gen.text_output(_seed(), gen.Limits(max_tokens=1000), NATURAL).num_tokens - 1
    out = gen.text_output(_seed(), gen.Limits(max_tokens=1000, min_tokens=natural + 10), NATURAL)
    assert out.finish_reason == "stop"
    assert out.num_tokens == natural + 10 + 1


def test_stop_string_cuts_text_and_reports_stop_reason() -> None:
    full = gen.text_output(_seed(), gen.Limits(max_tokens=1000), NATURAL)
    position = next(
        i
        for i, t in enumerate(full.tokens)
        if i >= 3 and t.startswith(" ") and t not in full.tokens[:i]
    )
    stop = full.tokens[position]
    out = gen.text_output(_seed(), gen.Limits(max_tokens=1000, stop=(stop,)), NATURAL)
    assert out.finish_reason == "stop"
    assert out.stop_reason == stop
    assert out.text == "".join(full.pieces[:position])
    assert out.num_tokens == position + 1  # the token that completed the stop string counts


def test_stop_string_spanning_tokens_trims_earlier_pieces() -> None:
    raw = ["alpha", " beta", " gamma", " delta"]
    out = gen.finish_output(raw, 4, gen.Limits(max_tokens=10, stop=("ta ga",)), seed=1)
    assert out.text == "alpha be"
    assert out.num_tokens == 3  # the token that completed the stop string is counted
    assert out.pieces == ("alpha", " be", "")


def test_include_stop_str_in_output_keeps_the_stop_string() -> None:
    raw = ["alpha", " beta", " gamma"]
    limits = gen.Limits(max_tokens=10, stop=("beta",), include_stop_str_in_output=True)
    out = gen.finish_output(raw, 3, limits, seed=1)
    assert out.text == "alpha beta"
    assert out.stop_reason == "beta"


def test_earliest_stop_string_wins() -> None:
    raw = ["one", " two", " three"]
    out = gen.finish_output(raw, 3, gen.Limits(max_tokens=10, stop=("three", "two")), seed=1)
    assert out.stop_reason == "two"
    assert out.text == "one "


def test_json_output_is_valid_json_from_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    value = gen.value_for_schema(schema, 42)
    out = gen.json_output(42, value, gen.Limits(max_tokens=1000))
    parsed = json.loads(out.text)
    assert set(parsed) == {"city", "days", "unit", "tags"}
    assert isinstance(parsed["city"], str)
    assert isinstance(parsed["days"], int)
    assert parsed["unit"] == "celsius"
    assert out.finish_reason == "stop"
    assert out.num_tokens == tok.count_tokens(out.text) + 1


def test_logprobs_are_structurally_valid_and_deterministic() -> None:
    tokens = ("a", " b", tok.EOS_TEXT)
    entries = gen.token_logprobs(5, tokens, 3)
    assert entries == gen.token_logprobs(5, tokens, 3)
    assert [e.token for e in entries] == list(tokens)
    for entry in entries:
        assert entry.logprob <= 0
        assert len(entry.top) == 3
        assert entry.top[0] == (entry.token, entry.logprob)
        assert [lp for _, lp in entry.top] == sorted((lp for _, lp in entry.top), reverse=True)
    assert all(e.top == () for e in gen.token_logprobs(5, tokens, 0))


def test_embeddings_are_unit_vectors_and_base64_is_little_endian_float32() -> None:
    vector = gen.embedding(9, 16)
    assert vector == gen.embedding(9, 16)
    assert vector != gen.embedding(10, 16)
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-9)
    decoded = struct.unpack("<16f", base64.b64decode(gen.embedding_base64(vector)))
    assert decoded == pytest.approx(vector, rel=1e-6)
