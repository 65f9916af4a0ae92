"""JSON shapes of vLLM's responses and stream chunks, as plain dicts (serialised with orjson).

Field sets follow vLLM's protocol models: non-streaming bodies are full ``model_dump`` output
(unset optional fields present as ``null``); stream chunks use ``exclude_unset``, so a chunk
carries only the fields vLLM sets on it; the trailing usage chunk has ``"choices": []`` and
omits null fields. Builders are pure: ids and timestamps are passed in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.vllm.generation import ChoiceOutput, TokenLogprob

DONE = b"data: [DONE]\n\n"
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def random_id() -> str:
    """32 hex digits, like vLLM's ``random_uuid()``."""
    return os.urandom(16).hex()


def now() -> int:
    return int(time.time())


def sse(payload: dict[str, Any]) -> bytes:
    """One server-sent event: ``data: {json}`` and a blank line."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage(prompt_tokens: int, completion_tokens: int, details: bool = True) -> dict[str, Any]:
    """vLLM's ``UsageInfo``; ``details=False`` drops the null ``prompt_tokens_details``."""
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }
    if details:
        out["prompt_tokens_details"] = None
    return out


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call rendered from a choice's output text (its arguments)."""

    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ChatChoice:
    """One finished chat choice, ready to serialise."""

    index: int
    output: ChoiceOutput
    finish_reason: str
    tool: ToolCall | None = None
    logprobs: list[TokenLogprob] | None = None


def _lp_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """``ChatCompletionLogProbs``: per token, its logprob, bytes and ``top_logprobs``."""
    return {
        "content": [
            {
                **_lp_entry(e.token, e.logprob),
                "top_logprobs": [_lp_entry(t, lp) for t, lp in e.top],
            }
            for e in entries
        ]
    }


def chat_message(choice: ChatChoice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.output.text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if choice.tool is not None:
        message["content"] = ""
        message["tool_calls"] = [
            {
                "id": choice.tool.call_id,
                "type": "function",
                "function": {"name": choice.tool.name, "arguments": choice.output.text},
            }
        ]
    message["reasoning_content"] = None
    return message


def chat_completion(
    request_id: str,
    created: int,
    model: str,
    choices: Sequence[ChatChoice],
    prompt_tokens: int,
) -> dict[str, Any]:
    """A non-streaming ``ChatCompletionResponse``."""
    completion_tokens = sum(c.output.num_tokens for c in choices)
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "message": chat_message(c),
                "logprobs": chat_logprobs(c.logprobs) if c.logprobs is not None else None,
                "finish_reason": c.finish_reason,
                "stop_reason": c.output.stop_reason,
            }
            for c in choices
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage(prompt_tokens, completion_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def chat_chunk(
    request_id: str,
    created: int,
    model: str,
    index: int,
    delta: dict[str, Any],
    *,
    logprobs: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    stop_reason: str | None = None,
    final: bool = False,
    chunk_usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` with one choice; ``final`` adds ``stop_reason``."""
    choice: dict[str, Any] = {
        "index": index,
        "delta": delta,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }
    if final:
        choice["stop_reason"] = stop_reason
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }
    if chunk_usage is not None:
        chunk["usage"] = chunk_usage
    return chunk


def chat_delta(choice: ChatChoice, step: int) -> dict[str, Any]:
    """The delta of token ``step`` of a choice: its content text, or tool-call arguments.

    A tool call's first delta also carries the call's id, type and function name (as vLLM's
    named-function streaming does); later ones carry only argument text.
    """
    piece = choice.output.pieces[step]
    if choice.tool is None:
        return {"content": piece}
    if step == 0:
        call: dict[str, Any] = {
            "id": choice.tool.call_id,
            "type": "function",
            "index": 0,
            "function": {"name": choice.tool.name, "arguments": piece},
        }
    else:
        call = {"index": 0, "function": {"arguments": piece}}
    return {"tool_calls": [call]}


def usage_chunk(
    object_type: str, request_id: str, created: int, model: str, prompt: int, completion: int
) -> dict[str, Any]:
    """The trailing stream chunk sent only when ``stream_options.include_usage`` is true."""
    return {
        "id": request_id,
        "object": object_type,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion, details=False),
    }


@dataclass(frozen=True, slots=True)
class CompletionChoice:
    """One finished completion choice (``index`` is prompt index x n + choice index)."""

    index: int
    output: ChoiceOutput
    prefix: str = ""
    """Echoed prompt text placed before the generated text."""
    logprobs: list[TokenLogprob] | None = None


def completion_logprobs(entries: Sequence[TokenLogprob], offset: int = 0) -> dict[str, Any]:
    """Legacy completions ``logprobs``: parallel lists plus a ``{token: logprob}`` per step."""
    text_offset: list[int] = []
    for e in entries:
        text_offset.append(offset)
        offset += len(e.token)
    return {
        "text_offset": text_offset,
        "token_logprobs": [e.logprob for e in entries],
        "tokens": [e.token for e in entries],
        "top_logprobs": [dict(e.top) for e in entries],
    }


def completion(
    request_id: str,
    created: int,
    model: str,
    choices: Sequence[CompletionChoice],
    prompt_tokens: int,
) -> dict[str, Any]:
    """A non-streaming ``CompletionResponse``."""
    completion_tokens = sum(c.output.num_tokens for c in choices)
    return {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": c.index,
                "text": c.prefix + c.output.text,
                "logprobs": (
                    completion_logprobs(c.logprobs, len(c.prefix))
                    if c.logprobs is not None
                    else None
                ),
                "finish_reason": c.output.finish_reason,
                "stop_reason": c.output.stop_reason,
                "prompt_logprobs": None,
            }
            for c in choices
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage(prompt_tokens, completion_tokens),
        "kv_transfer_params": None,
    }


def completion_chunk(
    request_id: str,
    created: int,
    model: str,
    index: int,
    text: str,
    *,
    logprobs: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    stop_reason: str | None = None,
    chunk_usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": finish_reason,
                "stop_reason": stop_reason,
            }
        ],
    }
    if chunk_usage is not None:
        chunk["usage"] = chunk_usage
    return chunk


def embeddings(
    request_id: str, created: int, model: str, data: Sequence[list[float] | str], prompt_tokens: int
) -> dict[str, Any]:
    """An ``EmbeddingResponse`` (each item a float list or a base64 string)."""
    return {
        "id": request_id,
        "object": "list",
        "created": created,
        "model": model,
        "data": [
            {"index": i, "object": "embedding", "embedding": vector}
            for i, vector in enumerate(data)
        ],
        "usage": usage(prompt_tokens, 0),
    }


def models(names: Sequence[str], root: str, max_model_len: int, created: int) -> dict[str, Any]:
    """``GET /v1/models``: one ``ModelCard`` per served name."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": root,
                "parent": None,
                "max_model_len": max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{random_id()}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in names
        ],
    }
