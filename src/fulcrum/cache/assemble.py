"""Fold a streamed answer into the non-streaming body that would have answered the same request.

Handles ``chat.completion.chunk`` streams (content, refusal and other text deltas, role,
tool-call and legacy function-call deltas, logprobs, finish reasons, usage) and legacy
``text_completion`` streams. Text is collected as pieces and joined once at the end.

Only a finished answer is assembled: the stream must end with ``data: [DONE]``, carry no error
event, and every choice must have a finish reason. Anything else (a client that left, an
upstream that broke, a mid-stream error) gives None, so a partial answer is never cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from fulcrum.providers.base import Usage
from fulcrum.providers.sse import SseSplitter, event_data

CHAT_CHUNK = "chat.completion.chunk"
TEXT_COMPLETION = "text_completion"
_TOP_LEVEL = ("system_fingerprint", "service_tier")  # copied from the last chunk that has them
_TOOL_CALL_KEYS = ("id", "type")  # set, not concatenated (as the openai SDK accumulates them)


class _ToolCall:
    __slots__ = ("arguments", "fields", "name")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.name: list[str] = []
        self.arguments: list[str] = []

    def add(self, delta: dict[str, Any]) -> None:
        for key in _TOOL_CALL_KEYS:
            if delta.get(key):
                self.fields[key] = delta[key]
        function = delta.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                self.name.append(function["name"])
            if isinstance(function.get("arguments"), str):
                self.arguments.append(function["arguments"])

    def result(self) -> dict[str, Any]:
        return {
            "id": self.fields.get("id", ""),
            "type": self.fields.get("type", "function"),
            "function": {"name": "".join(self.name), "arguments": "".join(self.arguments)},
        }


class _Choice:
    """One choice being assembled."""

    __slots__ = ("extra", "finish_reason", "function_call", "logprobs", "role", "texts", "tools")

    def __init__(self) -> None:
        self.role: str | None = None
        self.texts: dict[str, list[str]] = {}  # message field (or "text") -> pieces
        self.tools: dict[int, _ToolCall] = {}
        self.function_call: _ToolCall | None = None
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.extra: dict[str, Any] = {}  # other choice fields (vLLM's stop_reason), last wins

    def add(self, choice: dict[str, Any], chat: bool) -> int:
        """Fold one chunk's choice in; returns how many characters of text it added."""
        added = 0
        if chat:
            delta = choice.get("delta")
            if isinstance(delta, dict):
                added = self._add_delta(delta)
        elif isinstance(choice.get("text"), str):
            self.texts.setdefault("text", []).append(choice["text"])
            added = len(choice["text"])
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            self._add_logprobs(logprobs)
        for key, value in choice.items():
            if key in ("index", "delta", "text", "logprobs"):
                continue
            if key == "finish_reason":
                self.finish_reason = value if value is not None else self.finish_reason
            elif value is not None or key not in self.extra:
                self.extra[key] = value
        return added

    def _add_delta(self, delta: dict[str, Any]) -> int:
        added = 0
        for key, value in delta.items():
            if value is None:
                continue
            if key == "role":
                self.role = value
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    if isinstance(call, dict):
                        index = call.get("index", len(self.tools))
                        self.tools.setdefault(index, _ToolCall()).add(call)
            elif key == "function_call" and isinstance(value, dict):
                if self.function_call is None:
                    self.function_call = _ToolCall()
                self.function_call.add({"function": value})
            elif isinstance(value, str):  # content, refusal, reasoning_content, ...
                self.texts.setdefault(key, []).append(value)
                added += len(value)
        return added

    def _add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, value in logprobs.items():
            held = self.logprobs.get(key)
            if isinstance(value, list) and isinstance(held, list):
                held.extend(value)
            elif isinstance(value, list):
                self.logprobs[key] = list(value)
            elif value is not None or key not in self.logprobs:
                self.logprobs[key] = value

    def message(self) -> dict[str, Any]:
        texts = {key: "".join(pieces) for key, pieces in self.texts.items()}
        message: dict[str, Any] = {"role": self.role or "assistant"}
        message["content"] = texts.pop("content", None)
        message.update(texts)
        if self.tools:
            message["tool_calls"] = [self.tools[i].result() for i in sorted(self.tools)]
        if self.function_call is not None:
            message["function_call"] = self.function_call.result()["function"]
        return message


class CompletionAssembler:
    """Folds parsed stream chunks, in order, into one completion object."""

    def __init__(self) -> None:
        self.object: str | None = None
        self.top: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None
        self.failed = False  # an error event or a chunk of an unexpected shape
        self.text_chars = 0  # characters of text so far: a memory guard for the recorder

    def add(self, chunk: Any) -> None:
        if not isinstance(chunk, dict) or "error" in chunk:
            self.failed = True
            return
        kind = chunk.get("object")
        if kind != self.object:
            if self.object is not None or kind not in (CHAT_CHUNK, TEXT_COMPLETION):
                self.failed = True
                return
            self.object = kind
            self.top = {key: chunk.get(key) for key in ("id", "created", "model")}
        for key in _TOP_LEVEL:
            value = chunk.get(key)
            if value is not None:
                self.top[key] = value
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        chat = kind == CHAT_CHUNK
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0) if isinstance(choice, dict) else None
            if not isinstance(index, int):
                self.failed = True
                return
            held = self.choices.get(index)
            if held is None:
                held = self.choices[index] = _Choice()
            self.text_chars += held.add(choice, chat)

    def result(self, usage: Usage | None = None) -> dict[str, Any] | None:
        """The completion, or None when the stream failed or a choice never finished.

        ``usage`` fills in the usage when the stream's own usage chunk was not recorded (the
        gateway strips it from streams whose client did not ask for it).
        """
        if self.failed or not self.choices or self.object is None:
            return None
        if any(choice.finish_reason is None for choice in self.choices.values()):
            return None
        chat = self.object == CHAT_CHUNK
        choices = []
        for index in sorted(self.choices):
            held = self.choices[index]
            if chat:
                body: dict[str, Any] = {"index": index, "message": held.message()}
            else:
                body = {"index": index, "text": "".join(held.texts.get("text", ()))}
            body["logprobs"] = held.logprobs
            body["finish_reason"] = held.finish_reason
            body.update(held.extra)
            choices.append(body)
        completion: dict[str, Any] = {
            "id": self.top.get("id") or "",
            "object": "chat.completion" if chat else TEXT_COMPLETION,
            "created": self.top.get("created") or 0,
            "model": self.top.get("model") or "",
            "choices": choices,
        }
        for key in _TOP_LEVEL:
            if key in self.top:
                completion[key] = self.top[key]
        recorded = self.usage if self.usage is not None else usage_object(usage)
        if recorded is not None:
            completion["usage"] = recorded
        return completion


def usage_object(usage: Usage | None) -> dict[str, Any] | None:
    """An OpenAI ``usage`` object for ``usage``."""
    if usage is None:
        return None
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def assemble_completion(events: Iterable[bytes], usage: Usage | None = None) -> bytes | None:
    """The completion body of a whole recorded SSE stream (complete events), or None."""
    recorder = StreamRecorder()
    for event in events:
        recorder.feed(event)
    return recorder.finish(usage)


class StreamRecorder:
    """Records a stream as it is forwarded, to store it once it has finished.

    Fed the same bytes the client receives (whole events or arbitrary slices of them); keeps
    only the folded answer, and gives up (for good) once its text exceeds ``max_chars``,
    because such an answer could not be stored anyway (a character is at least one byte).
    """

    __slots__ = ("_assembler", "_done", "_max_chars", "_splitter", "abandoned")

    def __init__(self, max_chars: int | None = None) -> None:
        self._splitter = SseSplitter()
        self._assembler = CompletionAssembler()
        self._max_chars = max_chars
        self._done = False
        self.abandoned = False

    def feed(self, data: bytes) -> None:
        if self.abandoned or self._done:
            return
        for event in self._splitter.feed(data):
            if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
                payload: bytes | None = event[6:-2]  # the usual one-line event
            else:
                payload = event_data(event)
            if payload is None:
                continue  # comments and keep-alives
            if payload == b"[DONE]":
                self._done = True
                return
            try:
                self._assembler.add(orjson.loads(payload))
            except orjson.JSONDecodeError:
                self._assembler.failed = True
            if self._assembler.failed or (
                self._max_chars is not None and self._assembler.text_chars > self._max_chars
            ):
                self.abandoned = True
                return

    def finish(self, usage: Usage | None = None) -> bytes | None:
        """The assembled body, or None unless the stream ended with ``[DONE]`` and finished."""
        if self.abandoned or not self._done:
            return None
        completion = self._assembler.result(usage)
        return None if completion is None else orjson.dumps(completion)
