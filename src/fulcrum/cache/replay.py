"""Serve a stored answer: as a fresh non-streaming body, or replayed as an SSE stream.

Every answer served from the cache gets a fresh ``id`` and ``created``. An id names one
response: clients, our audit log and upstream-style tracing correlate by it, and two responses
sharing one id would look like a duplicate delivery. ``created`` says when this response was
made. The content (and ``model``, ``system_fingerprint``, ``usage``) is the stored one.

A replayed stream is what an OpenAI server would send for the same answer, in few events:
per choice one chunk with the role and the whole content (plus tool calls, logprobs), one
with the finish reason; then, if the client asked for ``stream_options.include_usage``, a
chunk with no choices and the usage (and ``"usage": null`` on the others, as OpenAI sends);
then ``data: [DONE]``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from fulcrum.cache.assemble import CHAT_CHUNK, TEXT_COMPLETION
from fulcrum.providers.sse import DONE_EVENT

_ID_PREFIX = {"chat.completion": "chatcmpl-", TEXT_COMPLETION: "cmpl-"}
_CHUNK_OBJECT = {"chat.completion": CHAT_CHUNK, TEXT_COMPLETION: TEXT_COMPLETION}
_TOP_LEVEL = ("system_fingerprint", "service_tier")


def new_id(kind: str) -> str:
    """A fresh completion id in OpenAI's style for the object ``kind``."""
    return _ID_PREFIX.get(kind, "cmpl-") + secrets.token_hex(12)


def fresh_body(body: bytes, completion_id: str | None = None, created: int | None = None) -> bytes:
    """``body`` with a new ``id`` and ``created``; bodies without an id (embeddings) as they are."""
    completion = orjson.loads(body)
    if not isinstance(completion, dict) or "id" not in completion:
        return body
    completion["id"] = completion_id or new_id(str(completion.get("object")))
    completion["created"] = int(time.time()) if created is None else created
    return orjson.dumps(completion)


def replay_sse(
    body: bytes,
    include_usage: bool,
    *,
    completion_id: str | None = None,
    created: int | None = None,
) -> list[bytes]:
    """The SSE events (each ``data: ...\\n\\n``) that stream the stored completion ``body``."""
    completion = orjson.loads(body)
    kind = completion.get("object") if isinstance(completion, dict) else None
    if kind not in _CHUNK_OBJECT:
        raise ValueError(f"cannot stream a stored {kind!r} as server-sent events")
    head: dict[str, Any] = {
        "id": completion_id or new_id(kind),
        "object": _CHUNK_OBJECT[kind],
        "created": int(time.time()) if created is None else created,
        "model": completion.get("model", ""),
    }
    for key in _TOP_LEVEL:
        if completion.get(key) is not None:
            head[key] = completion[key]
    chat = kind == "chat.completion"
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or ():
        first, last = _chat_choice(choice) if chat else _text_choice(choice)
        chunks.append({**head, "choices": [first]})
        chunks.append({**head, "choices": [last]})
    if include_usage:
        for chunk in chunks:
            chunk["usage"] = None
        chunks.append({**head, "choices": [], "usage": completion.get("usage")})
    events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks]
    events.append(DONE_EVENT)
    return events


def _chat_choice(choice: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    index = choice.get("index", 0)
    message = choice.get("message") or {}
    delta: dict[str, Any] = {"role": message.get("role") or "assistant"}
    for key, value in message.items():
        if key == "role" or value is None:
            continue
        if key == "tool_calls" and isinstance(value, list):
            value = [{"index": i, **call} for i, call in enumerate(value)]
        delta[key] = value
    first = {
        "index": index,
        "delta": delta,
        "logprobs": choice.get("logprobs"),
        "finish_reason": None,
    }
    last = {"index": index, "delta": {}, "logprobs": None}
    last.update(_rest(choice, ("index", "message", "logprobs")))
    return first, last


def _text_choice(choice: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    index = choice.get("index", 0)
    first = {
        "index": index,
        "text": choice.get("text") or "",
        "logprobs": choice.get("logprobs"),
        "finish_reason": None,
    }
    last = {"index": index, "text": "", "logprobs": None}
    last.update(_rest(choice, ("index", "text", "logprobs")))
    return first, last


def _rest(choice: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """The finish reason and any other choice fields (vLLM's ``stop_reason``) for the last chunk."""
    rest = {key: value for key, value in choice.items() if key not in skip}
    rest.setdefault("finish_reason", "stop")
    return rest
