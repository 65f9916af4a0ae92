"""Converse responses and ConverseStream events → OpenAI chat completions and chunks.

Pure: the caller supplies the id, the creation time and the model name, so every rule is
table-testable. Usage keeps Bedrock's prompt-cache split: ``prompt_tokens`` counts all input
(OpenAI's convention), ``prompt_tokens_details.cached_tokens`` the cache reads, and the cache
writes travel separately in ``Usage`` for cost accounting.
"""

from __future__ import annotations

from typing import Any

import orjson

from fulcrum.providers.base import Usage

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    """OpenAI finish_reason for a Converse stopReason (unknown reasons end as ``stop``)."""
    return FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from_converse(usage: dict[str, Any] | None) -> Usage:
    usage = usage or {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    return Usage(
        input_tokens=int(usage.get("inputTokens") or 0) + cache_read + cache_write,
        output_tokens=int(usage.get("outputTokens") or 0),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def converse_to_chat(
    response: dict[str, Any], *, completion_id: str, created: int, model: str
) -> tuple[dict[str, Any], Usage]:
    """The OpenAI ``chat.completion`` for a Converse response, and its usage."""
    blocks = (response.get("output") or {}).get("message", {}).get("content") or []
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            tool = block["toolUse"]
            tool_calls.append(
                {
                    "id": tool["toolUseId"],
                    "type": "function",
                    "function": {
                        "name": tool["name"],
                        "arguments": orjson.dumps(tool.get("input", {})).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    usage = usage_from_converse(response.get("usage"))
    completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(response.get("stopReason")),
            }
        ],
        "usage": openai_usage(usage),
    }
    return completion, usage


class StreamTranslator:
    """Turns ConverseStream events, in order, into OpenAI ``chat.completion.chunk`` objects.

    Holds only the state the translation needs: which content block is which tool call.
    """

    def __init__(self, *, completion_id: str, created: int, model: str) -> None:
        self._base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._tool_index: dict[int, int] = {}
        self.usage: Usage | None = None
        self.finish_reason: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def translate(self, event_type: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if event_type == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event_type == "contentBlockStart":
            tool = (payload.get("start") or {}).get("toolUse")
            if tool is None:
                return []
            index = self._tool_index.setdefault(
                int(payload.get("contentBlockIndex", 0)), len(self._tool_index)
            )
            call = {
                "index": index,
                "id": tool["toolUseId"],
                "type": "function",
                "function": {"name": tool["name"], "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if event_type == "contentBlockDelta":
            delta = payload.get("delta") or {}
            if "text" in delta:
                return [self._chunk({"content": delta["text"]})]
            if "toolUse" in delta:
                block = int(payload.get("contentBlockIndex", 0))
                index = self._tool_index.setdefault(block, len(self._tool_index))
                call = {
                    "index": index,
                    "function": {"arguments": delta["toolUse"].get("input", "")},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []  # reasoning and citation deltas have no OpenAI chat equivalent
        if event_type == "messageStop":
            self.finish_reason = finish_reason(payload.get("stopReason"))
            return [self._chunk({}, self.finish_reason)]
        if event_type == "metadata":
            self.usage = usage_from_converse(payload.get("usage"))
            return [{**self._base, "choices": [], "usage": openai_usage(self.usage)}]
        return []  # contentBlockStop and future event types carry nothing for the client
