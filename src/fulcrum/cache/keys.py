"""Cache keys: one SHA-256 per (tenant, endpoint, alias, everything that changes the answer).

The hash input is one canonical JSON array (orjson, keys sorted at every depth)::

    [KEY_VERSION, tenant, endpoint, alias, normalised body]

A JSON array frames every element (strings are quoted and escaped), so no choice of tenant and
alias names can make two different requests hash the same input: tenant ``"a"`` with alias
``"b:c"`` and tenant ``"a:b"`` with alias ``"c"`` are different arrays. Isolation between
tenants therefore rests on SHA-256 alone.

The body is normalised only where two spellings are equivalent by the OpenAI specification:

- fields that do not change the answer are dropped (``IGNORED_FIELDS``);
- top-level fields and message fields set to ``null`` are dropped (``null`` means "default");
- a message's string content equals a single ``{"type": "text", "text": ...}`` part;
- a legacy ``prompt`` or embeddings ``input`` string equals a one-string list;
- the sampling numbers in ``FLOAT_FIELDS`` compare as floats (``0`` equals ``0.0``).

Nothing else is normalised. Whitespace and letter case change what a model writes, so they are
kept; a field the gateway does not know is assumed to change the answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from fulcrum.schema.openai import InferenceRequest

KEY_VERSION = "fulcrum-cache/1"
"""Bump when the normalisation changes, so old entries are simply never found again."""

IGNORED_FIELDS = frozenset(
    {
        "model",  # the alias the client asked for is hashed on its own
        "stream",  # transport only: a cached answer is replayed as a stream when asked
        "stream_options",  # include_usage only adds a usage chunk, which replay produces
        "user",  # end-user id for abuse monitoring
        "safety_identifier",  # its successor
        "metadata",  # tags for OpenAI's stored completions
        "store",  # whether OpenAI stores the completion
        "prompt_cache_key",  # a routing hint for the provider's own prompt cache
        "request_id",  # vLLM's per-request id
    }
)
"""Body fields that never change the answer, so requests differing only in them share a key."""

FLOAT_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "min_p",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
    }
)
"""Numbers the upstream reads as floats, so ``0`` and ``0.0`` are the same request."""


def cache_key(tenant: str, request: InferenceRequest) -> str:
    """The hex SHA-256 naming ``request``'s answer in ``tenant``'s part of the cache."""
    canonical = orjson.dumps(
        [KEY_VERSION, tenant, request.endpoint.value, request.model, normalise_body(request.body)],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def normalise_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body with ignored and ``null`` fields dropped and equivalent spellings unified."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if value is None or name in IGNORED_FIELDS:
            continue
        if name == "messages" and isinstance(value, list):
            value = [_message(message) for message in value]
        elif name in ("prompt", "input") and isinstance(value, str):
            value = [value]
        elif name in FLOAT_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    return out


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {name: value for name, value in message.items() if value is not None}
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = [{"type": "text", "text": content}]
    return out
