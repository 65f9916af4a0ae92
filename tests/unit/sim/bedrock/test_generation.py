"""Deterministic output: same request, same reply; limits only ever cut the same text."""

from __future__ import annotations

import math
import re

import orjson
import pytest

from fulcrum.sim.bedrock import generation as gen
from fulcrum.sim.bedrock.tokenizer import count_tokens, pieces


def test_seed_depends_on_model_and_every_part() -> None:
    a = gen.request_seed("m", b"x", b"y")
    assert a == gen.request_seed("m", b"x", b"y")
    assert a != gen.request_seed("m2", b"x", b"y")
    assert a != gen.request_seed("m", b"xy")  # parts are separated, not concatenated
    assert gen.canonical_json({"b": 1, "a": 2}) == gen.canonical_json({"a": 2, "b": 1})


@pytest.mark.parametrize("seed", [0, 1, 2**63, 12345678901234])
def test_natural_text_has_exactly_the_drawn_length(seed: int) -> None:
    length = gen.natural_length(seed, 16, 64)
    assert 16 <= length <= 64
    text = gen.natural_text(seed, length)
    assert count_tokens(text) == length
    assert text.endswith(".")
    assert text[0].isupper()
    assert text == gen.natural_text(seed, length)


def test_max_tokens_yields_prefixes_of_the_same_reply() -> None:
    text = gen.natural_text(7, 40)
    full = gen.cut_text(text, None, (), "end_turn")
    assert (full.text, full.tokens, full.stop_reason) == (text, 40, "end_turn")
    previous = ""
    for limit in range(1, 40):
        cut = gen.cut_text(text, limit, (), "end_turn")
        assert cut.stop_reason == "max_tokens"
        assert cut.tokens == limit
        assert text.startswith(cut.text)
        assert cut.text.startswith(previous)
        previous = cut.text
    assert gen.cut_text(text, 40, (), "end_turn").stop_reason == "end_turn"


def test_stop_sequence_cuts_before_the_match_and_charges_its_tokens() -> None:
    text = gen.natural_text(11, 30)
    toks = pieces(text)
    stop = toks[10].strip()
    cut = gen.cut_text(text, None, [stop], "end_turn")
    assert cut.stop_reason == "stop_sequence"
    assert stop not in cut.text
    assert text.startswith(cut.text)
    first = text.find(stop)
    assert cut.text == text[:first]
    completed_at = next(i for i in range(len(toks)) if stop in "".join(toks[: i + 1]))
    assert cut.tokens == completed_at + 1


def test_max_tokens_wins_when_reached_before_the_stop_sequence() -> None:
    text = gen.natural_text(11, 30)
    stop = pieces(text)[20].strip()
    if text.find(stop) < len("".join(pieces(text)[:5])):
        pytest.skip("stop word also occurs early in this text")
    cut = gen.cut_text(text, 5, [stop], "end_turn")
    assert (cut.tokens, cut.stop_reason) == (5, "max_tokens")


def test_tool_input_loosely_follows_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
            "score": {"type": "number"},
            "detailed": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
            "optional": {"type": "string"},
        },
        "required": ["city", "unit", "days", "score", "detailed", "tags", "where"],
    }
    value = gen.tool_input(schema, 42)
    assert value == gen.tool_input(schema, 42)
    assert set(value) == set(schema["required"])  # type: ignore[arg-type]
    assert isinstance(value["city"], str)
    assert value["unit"] == "celsius"
    assert isinstance(value["days"], int) and value["days"] >= 1
    assert isinstance(value["score"], float)
    assert isinstance(value["detailed"], bool)
    assert isinstance(value["tags"], list) and isinstance(value["tags"][0], str)
    assert isinstance(value["where"]["lat"], float)
    assert gen.tool_input({"type": "string"}, 1).keys() == {"value"}
    assert gen.tool_input(None, 1).keys() == {"value"}
    assert gen.tool_input({"type": "object"}, 1) == {}


def test_tool_use_ids_look_like_bedrock_ids() -> None:
    ids = {gen.tool_use_id(seed) for seed in range(50)}
    assert len(ids) == 50
    for tool_id in ids:
        assert re.fullmatch(r"tooluse_[A-Za-z0-9_-]{22}", tool_id)
    assert gen.tool_use_id(3) == gen.tool_use_id(3)


def test_tool_mentions() -> None:
    assert gen.mentions("please call get_weather now", "get_weather")
    assert gen.mentions("What's the Get Weather in Paris?", "get_weather")
    assert not gen.mentions("hello", "get_weather")


@pytest.mark.parametrize("dims", [256, 512, 1024])
def test_embeddings_are_deterministic_and_normalised(dims: int) -> None:
    vector = gen.embedding("hello world", dims, True)
    assert len(vector) == dims
    assert vector == gen.embedding("hello world", dims, True)
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-5)
    raw = gen.embedding("hello world", dims, False)
    assert not math.isclose(math.sqrt(sum(v * v for v in raw)), 1.0, rel_tol=1e-3)
    assert gen.embedding("other", dims, True) != vector
    assert gen.binary_embedding(vector) == [1 if v > 0 else 0 for v in vector]


def test_tool_use_tokens_count_name_and_input() -> None:
    text = orjson.dumps({"city": "Paris"}).decode()
    assert gen.tool_use_tokens("get_weather", text) == 1 + count_tokens(text) + 4
