"""Deterministic "model output": the same request always yields the same reply.

A request's seed is a BLAKE2b hash of (base model id, the key-sorted JSON of ``system``,
``messages``, ``toolConfig``, ``temperature`` and ``topP``). ``maxTokens`` and
``stopSequences`` are not part of it: they only cut the same reply, so a smaller limit yields a
prefix of a larger one. A Mersenne Twister seeded with the seed (portable across Python
versions for integer seeds) draws the natural length and the words. Everything here is pure.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.bedrock.tokenizer import TOOL_USE_OVERHEAD, count_tokens, pieces

_WORDS = """
    river stone signal cloud harbor lantern meadow copper window orbit garden violet
    engine summit thread canyon ember glacier willow compass marble falcon beacon quartz
    prairie tunnel saddle orchard pepper anchor timber velvet harvest meteor ribbon
    island cobalt thunder pillow circuit mosaic feather crystal shadow rocket lagoon
    bramble canvas pebble spiral breeze silver forest paper bridge candle valley morning
    planet garnet ladder button market season blossom kettle puzzle magnet fossil legend
    the a and of to in on with for from by over under near across between around through
    quiet bright gentle rapid hidden golden ancient steady narrow distant simple curious
    calm vivid sudden humble eager bold tender brisk silent hollow crisp warm
    carries holds finds builds shapes follows gathers crosses keeps turns lifts
    shows marks guides opens joins moves sends waits reads writes draws hears
"""
VOCAB: tuple[str, ...] = tuple(_WORDS.split())

_COMMA_ONE_IN = 8
_TOOL_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
PADDING_ALPHABET = string.ascii_lowercase + string.ascii_uppercase + string.digits
"""Bedrock pads every stream event with ``"p": <a prefix of this alphabet>``."""


def canonical_json(value: Any) -> bytes:
    """Key-sorted JSON, so equal requests hash equally whatever their key order."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def request_seed(model_id: str, *parts: bytes) -> int:
    """The 64-bit seed of one request: BLAKE2b over the model id and the parts."""
    digest = hashlib.blake2b(model_id.encode("utf-8"), digest_size=8)
    for part in parts:
        digest.update(b"\x00")
        digest.update(part)
    return int.from_bytes(digest.digest(), "little")


def natural_length(seed: int, min_tokens: int, max_tokens: int) -> int:
    """Tokens the model "wants" to write (its reply ends with ``.``, which counts)."""
    span = max(0, max_tokens - min_tokens) + 1
    return min_tokens + (seed ^ 0x5EED) % span


@functools.lru_cache(maxsize=8192)
def natural_text(seed: int, length: int) -> str:
    """A sentence of exactly ``length`` tokens: words, occasional commas, a final period."""
    if length <= 0:
        return ""
    rng = random.Random(seed)
    out: list[str] = []
    words = 0
    budget = length - 1  # the final "."
    while len(out) < budget:
        if out and out[-1] != "," and len(out) < budget - 1 and rng.randrange(_COMMA_ONE_IN) == 0:
            out.append(",")
            continue
        word = VOCAB[rng.randrange(len(VOCAB))]
        out.append(word.capitalize() if words == 0 else word)
        words += 1
    out.append(".")
    text = "".join(t if i == 0 or t in ",." else " " + t for i, t in enumerate(out))
    return text


@dataclass(frozen=True, slots=True)
class TextCut:
    """A reply after ``maxTokens`` and ``stopSequences``."""

    text: str
    tokens: int
    """Output tokens charged (tokens of a matched stop sequence included)."""
    stop_reason: str
    """``end_turn``, ``max_tokens`` or ``stop_sequence``."""


def cut_text(
    text: str, max_tokens: int | None, stop_sequences: Sequence[str], natural_stop: str
) -> TextCut:
    """Apply the output limit and stop sequences to ``text`` (a model's whole reply).

    Tokens are produced one at a time; generation stops at the token that completes the first
    stop sequence (the sequence and what follows are dropped, its tokens are charged) or when
    ``max_tokens`` tokens are out, whichever comes first.
    """
    toks = pieces(text)
    limit = len(toks) if max_tokens is None else min(len(toks), max_tokens)
    if stop_sequences:
        sofar = ""
        for index in range(limit):
            sofar += toks[index]
            hits = [(sofar.find(s), s) for s in stop_sequences if s and s in sofar]
            if hits:
                position = min(h[0] for h in hits)
                return TextCut(sofar[:position], index + 1, "stop_sequence")
    if limit < len(toks):
        return TextCut("".join(toks[:limit]), limit, "max_tokens")
    return TextCut(text, len(toks), natural_stop)


# ----------------------------------------------------------------------------- tool use


def tool_use_id(seed: int, index: int = 0) -> str:
    """A ``tooluse_`` id like Bedrock's (22 URL-safe characters), stable per request."""
    rng = random.Random(seed ^ (0x7001 + index))
    return "tooluse_" + "".join(rng.choice(_TOOL_ID_ALPHABET) for _ in range(22))


def _value_for(schema: Any, rng: random.Random, depth: int) -> Any:
    if not isinstance(schema, Mapping):
        return VOCAB[rng.randrange(len(VOCAB))]
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return _value_for(options[0], rng, depth)
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        if depth > 6:
            return {}
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        required = schema.get("required")
        names = (
            list(props)
            if not isinstance(required, list)
            else [n for n in props if n in required] or list(props)[:1]
        )
        return {name: _value_for(props[name], rng, depth + 1) for name in names}
    if kind == "array":
        return [_value_for(schema.get("items"), rng, depth + 1)] if depth <= 6 else []
    if kind == "integer":
        low = schema.get("minimum", 1)
        low = int(low) if isinstance(low, int | float) and not isinstance(low, bool) else 1
        return low + rng.randrange(10)
    if kind == "number":
        low = schema.get("minimum", 0)
        low = float(low) if isinstance(low, int | float) and not isinstance(low, bool) else 0.0
        return round(low + rng.random() * 10, 2)
    if kind == "boolean":
        return rng.randrange(2) == 1
    if kind == "null":
        return None
    return VOCAB[rng.randrange(len(VOCAB))]


def tool_input(schema: Any, seed: int) -> dict[str, Any]:
    """A JSON object loosely conforming to ``schema`` (a tool's ``inputSchema.json``).

    Required properties (or, without ``required``, all properties) get a value: ``enum`` → the
    first value, strings → a word, integers/numbers → from ``minimum``, booleans, arrays of one
    item, nested objects. Always an object, as Converse's ``toolUse.input`` is.
    """
    value = _value_for(schema, random.Random(seed ^ 0x1337), 0)
    return value if isinstance(value, dict) else {"value": value}


def tool_use_tokens(name: str, input_json: str) -> int:
    """Output tokens of a ``toolUse`` block."""
    return count_tokens(name) + count_tokens(input_json) + TOOL_USE_OVERHEAD


def mentions(text: str, name: str) -> bool:
    """Whether ``text`` names a tool: its name, or its name with ``_``/``-`` as spaces."""
    lowered = text.lower()
    target = name.lower()
    if target in lowered:
        return True
    spaced = target.replace("_", " ").replace("-", " ")
    return spaced != target and spaced in lowered


# --------------------------------------------------------------------------- embeddings


@functools.lru_cache(maxsize=4096)
def embedding(text: str, dimensions: int, normalize: bool) -> tuple[float, ...]:
    """A deterministic vector for ``text``: unit length when ``normalize``.

    Without normalisation the components are scaled by ``sqrt(tokens + 1)``, so the vector is
    not unit length (as Titan's raw output is not).
    """
    key = text.encode("utf-8")
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.blake2b(key, digest_size=64, salt=block.to_bytes(8, "little")).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        block += 1
    vector = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    scale = 1.0 / norm if normalize else math.sqrt(count_tokens(text) + 1) / norm
    return tuple(round(v * scale, 7) for v in vector)


def binary_embedding(vector: Sequence[float]) -> list[int]:
    """Titan's ``binary`` embedding type: 1 for a positive component, else 0."""
    return [1 if v > 0 else 0 for v in vector]
