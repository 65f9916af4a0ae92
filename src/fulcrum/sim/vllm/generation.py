"""Deterministic "model output": the same request always yields the same tokens.

A request's seed is a hash of (model, prompt or messages, ``seed``, choice index); a
SplitMix64 stream over that seed picks words from a fixed vocabulary. Natural output length is
drawn from the same stream, so tests can assert exact content, and ``max_tokens`` only ever
truncates (a shorter limit yields a prefix of a longer one). Stop strings, ``min_tokens`` and
``ignore_eos`` follow vLLM's rules. Everything here is pure.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.vllm.tokenizer import EOS_TEXT, pieces

_VOCAB_TEXT = """
    the of and to in is that it was for on are with as be at by this from or have an
    they which one you were all we when there can more if no out so said what up its
    about than into them only some could new other time two may then do first any now
    like our over such even most made after also did many before must through back
    years where much your way well down should because each just those people how too
    little state good very make world still own see men work long get here between both
    life being under never day same another know while last might great old year off
    come since against go came right used take three states himself few house use during
    without again place around however home small found thought went say part once
    general high upon school every does got united left number course war until always
    away something fact though water less public put think almost hand enough far took
    head yet government system better set told nothing night end why called didn find
    going look asked later point knew city next program business give group toward young
    days let room president side social given present several order national possible
    rather second face per among form important often things looked early white case
    john become large big need four within felt along children saw best church ever least
    power development light thing seemed family interest want members others mind country
    area done turned although open problem god service certain kind different thus began
    door help means sense whole matter perhaps itself york times law human line above name
    example action company hands local show whether five history gave today either act
    feet across taken past quite anything seen having death experience body word half
    really week field car words already themselves information tell together college shall
    money period held keep sure probably free seems real behind cannot miss political air
    question making office brought whose special heard major problems ago became federal
"""
VOCAB: tuple[str, ...] = tuple(_VOCAB_TEXT.split())
"""The words generated text is made of."""
PUNCTUATION: tuple[str, ...] = (",", ".")
TOKEN_TABLE: tuple[str, ...] = VOCAB + PUNCTUATION
"""Every token generated text can contain; ``/tokenize`` gives them fixed ids."""
VOCAB_INDEX: dict[str, int] = {token: i for i, token in enumerate(TOKEN_TABLE)}

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_COMMA_ONE_IN = 9


def mix64(state: int) -> int:
    """One SplitMix64 step: a fast, well-distributed, portable integer hash."""
    z = (state + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def request_seed(model: str, prompt_key: bytes, seed: int | None, index: int) -> int:
    """The 64-bit seed of one choice of one request."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(model.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(prompt_key)
    digest.update(b"\x00")
    digest.update(b"none" if seed is None else str(seed).encode("ascii"))
    digest.update(b"\x00")
    digest.update(str(index).encode("ascii"))
    return int.from_bytes(digest.digest(), "little")


def canonical_json(value: Any) -> bytes:
    """Key-sorted JSON, so equal messages hash equally regardless of key order."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def natural_length(seed: int, min_tokens: int, max_tokens: int) -> int:
    """Visible tokens the model "wants" to write before its end-of-sequence token."""
    span = max(0, max_tokens - min_tokens) + 1
    return min_tokens + mix64(seed ^ 0x5EED) % span


_VALUES_PER_BLOCK = 32


def stream_values(seed: int, start: int, count: int) -> list[int]:
    """16-bit values ``start .. start+count-1`` of the pseudo-random stream for ``seed``.

    Each BLAKE2b block yields 32 values, so a whole reply costs a couple of hash calls; value
    ``k`` depends only on (seed, k), which keeps every prefix stable.
    """
    if count <= 0:
        return []
    key = (seed & _MASK64).to_bytes(8, "little")
    first = start // _VALUES_PER_BLOCK
    last = (start + count - 1) // _VALUES_PER_BLOCK
    values: list[int] = []
    for block in range(first, last + 1):
        digest = hashlib.blake2b(block.to_bytes(8, "little"), key=key, digest_size=64).digest()
        values.extend(struct.unpack("<32H", digest))
    skip = start - first * _VALUES_PER_BLOCK
    return values[skip : skip + count]


def word_tokens(seed: int, count: int, start: int = 0, first: bool = True) -> list[str]:
    """``count`` word/comma tokens at positions ``start..`` of the stream for ``seed``.

    A space precedes every word except the very first of a text (``first``); a comma never
    follows a comma or opens a run.
    """
    out: list[str] = []
    prev_comma = True
    vocab = VOCAB
    size = len(vocab)
    for value in stream_values(seed, start, count):
        if not prev_comma and value % _COMMA_ONE_IN == 0:
            out.append(",")
            prev_comma = True
            continue
        word = vocab[(value >> 4) % size]
        out.append(word if first else " " + word)
        first = False
        prev_comma = False
    return out


def sentence_tokens(seed: int, count: int, natural_len: int) -> list[str]:
    """The first ``count`` tokens of free text whose natural end is a period at ``natural_len``.

    Tokens past the natural end (``ignore_eos`` / ``min_tokens``) continue with more words.
    """
    body = max(0, natural_len - 1)
    out = word_tokens(seed, min(count, body))
    if len(out) == body and out and out[-1] == ",":
        out[-1] = " so"  # never end a sentence with ",."; only ever touches position body-1
    if count > body:
        out.append(".")
    if count > natural_len:
        out.extend(word_tokens(seed, count - natural_len, start=natural_len, first=False))
    return out[:count]


@dataclass(frozen=True, slots=True)
class ChoiceOutput:
    """What one choice generated: per-token text deltas and why it finished."""

    tokens: tuple[str, ...]
    """Token strings as the model produced them (EOS included), for logprobs."""
    pieces: tuple[str, ...]
    """Visible text delta of each token (one per token; "" for EOS or text cut by a stop)."""
    finish_reason: str
    stop_reason: str | None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True, slots=True)
class Limits:
    """The sampling parameters that decide where generation ends."""

    max_tokens: int
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False


def finish_output(raw: Sequence[str], natural: int, limits: Limits, seed: int) -> ChoiceOutput:
    """Apply max_tokens, min_tokens, ignore_eos and stop strings to a raw token stream.

    ``raw`` must hold at least ``min(wanted, limits.max_tokens)`` tokens, where ``wanted`` is
    ``natural`` (tokens before EOS) raised to ``min_tokens``, or ``max_tokens`` with
    ``ignore_eos``; missing tokens are filled with continuation words from ``seed``.
    """
    limit = max(0, limits.max_tokens)
    wanted = limit if limits.ignore_eos else max(natural, limits.min_tokens)
    visible_count = min(wanted, limit)
    toks = list(raw[:visible_count])
    if len(toks) < visible_count:
        toks.extend(word_tokens(seed, visible_count - len(toks), start=len(raw), first=not toks))

    if limits.stop:
        cut = _find_stop(toks, limits)
        if cut is not None:
            last, keep_chars, stop_str = cut
            kept = toks[: last + 1]
            return ChoiceOutput(
                tokens=tuple(kept),
                pieces=tuple(_truncate_pieces(kept, keep_chars)),
                finish_reason="stop",
                stop_reason=stop_str,
            )

    if visible_count < limit:
        return ChoiceOutput(
            tokens=(*toks, EOS_TEXT),
            pieces=(*toks, ""),
            finish_reason="stop",
            stop_reason=None,
        )
    return ChoiceOutput(
        tokens=tuple(toks), pieces=tuple(toks), finish_reason="length", stop_reason=None
    )


def _find_stop(toks: Sequence[str], limits: Limits) -> tuple[int, int, str] | None:
    """First token at which a stop string appears: (token index, chars kept, stop string)."""
    text = ""
    for index, tok in enumerate(toks):
        before = len(text)
        text += tok
        if index + 1 < limits.min_tokens:
            continue
        best: tuple[int, str] | None = None
        for stop in limits.stop:
            if not stop:
                continue
            pos = text.find(stop, max(0, before - len(stop) + 1))
            if pos >= 0 and (best is None or pos < best[0]):
                best = (pos, stop)
        if best is not None:
            pos, stop = best
            keep = pos + len(stop) if limits.include_stop_str_in_output else pos
            return index, keep, stop
    return None


def _truncate_pieces(toks: Sequence[str], keep_chars: int) -> list[str]:
    out: list[str] = []
    offset = 0
    for tok in toks:
        room = max(0, keep_chars - offset)
        out.append(tok[:room])
        offset += len(tok)
    return out


@functools.lru_cache(maxsize=4096)
def text_output(seed: int, limits: Limits, natural_range: tuple[int, int]) -> ChoiceOutput:
    """Free-text output for one choice (memoised: load tests repeat the same requests)."""
    natural = natural_length(seed, *natural_range)
    wanted = limits.max_tokens if limits.ignore_eos else max(natural, limits.min_tokens)
    raw = sentence_tokens(seed, min(wanted, max(0, limits.max_tokens)), natural)
    return finish_output(raw, natural, limits, seed)


def json_output(seed: int, value: Any, limits: Limits) -> ChoiceOutput:
    """Output whose text is ``value`` as JSON (structured output, tool-call arguments)."""
    text = json_text(value)
    raw = pieces(text)
    return finish_output(raw, len(raw), limits, seed)


def json_text(value: Any) -> str:
    """JSON the way models tend to write it: ", " and ": " separators, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False)


def value_for_schema(schema: Any, seed: int, depth: int = 0) -> Any:
    """A deterministic value that satisfies the common subset of JSON Schema."""
    if not isinstance(schema, Mapping) or depth > 6:
        return _word(seed)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return value_for_schema(options[0], seed, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None and isinstance(schema.get("properties"), Mapping):
        kind = "object"
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return {}
        return {
            str(name): value_for_schema(sub, mix64(seed + i), depth + 1)
            for i, (name, sub) in enumerate(props.items())
        }
    if kind == "array":
        return [value_for_schema(schema.get("items"), mix64(seed + 1), depth + 1)]
    if kind == "integer":
        return int(mix64(seed) % 100)
    if kind == "number":
        return round((mix64(seed) % 10_000) / 100, 2)
    if kind == "boolean":
        return bool(mix64(seed) & 1)
    if kind == "null":
        return None
    return _word(seed)


def _word(seed: int) -> str:
    return VOCAB[mix64(seed) % len(VOCAB)]


def json_object_value(seed: int) -> dict[str, str]:
    """The object produced for ``response_format: {"type": "json_object"}``."""
    return {"answer": "".join(word_tokens(seed, 6))}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """Logprob of a generated token and its ranked alternatives (sampled token first)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]


def token_logprobs(seed: int, tokens: Sequence[str], top_k: int) -> list[TokenLogprob]:
    """Deterministic, structurally valid logprobs: the sampled token is always rank 1."""
    out: list[TokenLogprob] = []
    for position, token in enumerate(tokens):
        h = mix64(seed ^ (position * 0x2545F4914F6CDD1D & _MASK64))
        logprob = -((h % 20_000) / 10_000.0)
        top: list[tuple[str, float]] = [(token, logprob)]
        alt = h
        for rank in range(1, top_k):
            alt = mix64(alt)
            word = " " + VOCAB[alt % len(VOCAB)]
            top.append((word, logprob - rank * 0.75 - (alt % 1000) / 4000.0))
        out.append(TokenLogprob(token=token, logprob=logprob, top=tuple(top[:top_k])))
    return out


def embedding(seed: int, dimensions: int) -> list[float]:
    """A unit-length vector in ``dimensions`` dimensions derived from ``seed``."""
    values: list[float] = []
    state = seed
    for _ in range(dimensions):
        state = mix64(state)
        values.append((state / _MASK64) * 2.0 - 1.0)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embedding_base64(values: Sequence[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (vLLM's ``encoding_format: base64``)."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
