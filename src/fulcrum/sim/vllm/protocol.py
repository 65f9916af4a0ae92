"""Parse and validate OpenAI-style request bodies the way vLLM does, without pydantic.

The hot path must stay cheap, so bodies are plain ``orjson`` dicts checked by hand; each check
mirrors a vLLM validation and raises :class:`ApiError` with vLLM's status and message.
Fields vLLM accepts but that do not change the emulator's output (temperature, top_p,
penalties, ...) are accepted and ignored, as vLLM ignores unknown fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.vllm.errors import ApiError

MAX_LOGPROBS = 20
"""vLLM's default ``--max-logprobs``."""

COMPLETION_DEFAULT_MAX_TOKENS = 16
"""vLLM's ``CompletionRequest.max_tokens`` default."""


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(f"JSON decode error: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError("Input should be a valid dictionary or object to extract fields from")
    return data


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{key}: Input should be a valid integer", param=key)
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(f"{key}: Input should be a valid boolean", param=key)
    return value


def _model(data: Mapping[str, Any]) -> str | None:
    value = data.get("model")
    if value is not None and not isinstance(value, str):
        raise ApiError("model: Input should be a valid string", param="model")
    return value


def _stop(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise ApiError("stop: Input should be a valid string or list of strings", param="stop")


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling and streaming options shared by chat and completions."""

    n: int
    max_tokens: int | None
    min_tokens: int
    stop: tuple[str, ...]
    include_stop_str_in_output: bool
    ignore_eos: bool
    seed: int | None
    logprobs: int | None
    """None: no logprobs; k: logprobs with k ranked alternatives per token."""
    stream: bool
    include_usage: bool
    continuous_usage: bool


def _sampling(data: Mapping[str, Any], max_tokens: int | None, logprobs: int | None) -> Sampling:
    n = _int(data, "n", 1)
    assert n is not None
    if n < 1:
        raise ApiError("n must be at least 1.", param="n")
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")
    min_tokens = _int(data, "min_tokens", 0) or 0
    if min_tokens < 0:
        raise ApiError(f"min_tokens must be greater than or equal to 0, got {min_tokens}.")
    if max_tokens is not None and min_tokens > max_tokens:
        raise ApiError(
            f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {min_tokens}."
        )
    seed = _int(data, "seed")
    stream = _bool(data, "stream")
    options = data.get("stream_options")
    include_usage = continuous = False
    if options is not None:
        if not stream:
            raise ApiError("Stream options can only be defined when `stream=True`.")
        if not isinstance(options, dict):
            raise ApiError("stream_options: Input should be a valid dictionary")
        include_usage = _bool(options, "include_usage", True)
        continuous = _bool(options, "continuous_usage_stats", False)
    return Sampling(
        n=n,
        max_tokens=max_tokens,
        min_tokens=min_tokens,
        stop=_stop(data),
        include_stop_str_in_output=_bool(data, "include_stop_str_in_output"),
        ignore_eos=_bool(data, "ignore_eos"),
        seed=seed,
        logprobs=logprobs,
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
    )


@dataclass(frozen=True, slots=True)
class ForcedTool:
    """A tool call the request forces (``tool_choice`` "required" or a named function)."""

    name: str
    parameters: Any
    named: bool
    """True for a named function: vLLM then finishes with "stop", not "tool_calls"."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str | None
    messages: list[dict[str, Any]]
    tools: list[Any] | None
    forced_tool: ForcedTool | None
    response_format: dict[str, Any] | None
    add_generation_prompt: bool
    sampling: Sampling


def parse_chat(data: dict[str, Any], auto_tool_choice: bool) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body."""
    messages = data.get("messages")
    if messages is None:
        raise ApiError("messages: Field required", param="messages")
    if not isinstance(messages, list):
        raise ApiError("messages: Input should be a valid list", param="messages")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError("messages: every message must be an object with a role")

    max_tokens = _int(data, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _int(data, "max_tokens")

    logprobs_on = _bool(data, "logprobs")
    top = data.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int)):
        raise ApiError("top_logprobs: Input should be a valid integer", param="top_logprobs")
    if top is not None and top != 0 and not logprobs_on:
        raise ApiError("when using `top_logprobs`, `logprobs` must be set to true.")
    if top is not None and (top < 0 or top > MAX_LOGPROBS):
        raise ApiError(
            f"`top_logprobs` must be a value between 0 and {MAX_LOGPROBS}, got {top}.",
            param="top_logprobs",
        )
    logprobs = (top or 0) if logprobs_on else None

    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError("tools: Input should be a valid list", param="tools")
    forced = _forced_tool(data, tools, auto_tool_choice)

    response_format = data.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict) or response_format.get("type") not in (
            "text",
            "json_object",
            "json_schema",
            "structural_tag",
        ):
            raise ApiError(
                "response_format: type must be one of 'text', 'json_object', 'json_schema'",
                param="response_format",
            )
        if response_format["type"] == "json_schema" and not isinstance(
            response_format.get("json_schema"), dict
        ):
            raise ApiError(
                "response_format: json_schema is required for type 'json_schema'",
                param="response_format",
            )

    return ChatRequest(
        model=_model(data),
        messages=messages,
        tools=tools or None,
        forced_tool=forced,
        response_format=response_format,
        add_generation_prompt=_bool(data, "add_generation_prompt", True),
        sampling=_sampling(data, max_tokens, logprobs),
    )


def _tool_functions(tools: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ApiError("tools: every tool must have a function with a name", param="tools")
        out[function["name"]] = function.get("parameters")
    return out


def _forced_tool(
    data: Mapping[str, Any], tools: list[Any] | None, auto_tool_choice: bool
) -> ForcedTool | None:
    choice = data.get("tool_choice")
    if choice is None:
        choice = "auto" if tools else "none"
    functions = _tool_functions(tools) if tools else {}
    if choice == "none":
        return None
    if choice == "auto":
        if tools and not auto_tool_choice:
            raise ApiError(
                '"auto" tool choice requires --enable-auto-tool-choice and '
                "--tool-call-parser to be set"
            )
        return None
    if not tools:
        raise ApiError("When using `tool_choice`, `tools` must be set.", param="tool_choice")
    if choice == "required":
        first = next(iter(functions))
        return ForcedTool(name=first, parameters=functions[first], named=False)
    if isinstance(choice, dict):
        function = choice.get("function")
        name: Any = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise ApiError("tool_choice: function.name is required", param="tool_choice")
        if name not in functions:
            raise ApiError(f"Tool '{name}' has not been passed in `tools`.", param="tool_choice")
        return ForcedTool(name=name, parameters=functions[name], named=True)
    raise ApiError(
        "tool_choice: Input should be 'none', 'auto', 'required' or a named function",
        param="tool_choice",
    )


PromptInput = str | list[int]
"""One completion prompt: text, or token ids."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str | None
    prompts: list[PromptInput]
    echo: bool
    add_special_tokens: bool
    sampling: Sampling


def _prompts(value: Any, key: str) -> list[PromptInput]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [list(value)]
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(
            isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
            for v in value
        ):
            return [list(v) for v in value]
    if isinstance(value, list) and not value:
        raise ApiError(f"{key} must not be empty", param=key)
    raise ApiError(
        f"{key}: Input should be a string, a list of strings or a list of token ids", param=key
    )


def parse_completion(data: dict[str, Any]) -> CompletionRequest:
    """Validate a ``/v1/completions`` body."""
    if "prompt" not in data or data["prompt"] is None:
        raise ApiError("prompt: Field required", param="prompt")
    prompts = _prompts(data["prompt"], "prompt")
    max_tokens = _int(data, "max_tokens", COMPLETION_DEFAULT_MAX_TOKENS)
    logprobs = _int(data, "logprobs")
    if logprobs is not None and (logprobs < 0 or logprobs > MAX_LOGPROBS):
        raise ApiError(
            f"Requested sample logprobs of {logprobs}, which is greater than max allowed: "
            f"{MAX_LOGPROBS}"
            if logprobs > 0
            else "logprobs must be non-negative",
            param="logprobs",
        )
    return CompletionRequest(
        model=_model(data),
        prompts=prompts,
        echo=_bool(data, "echo"),
        add_special_tokens=_bool(data, "add_special_tokens", True),
        sampling=_sampling(data, max_tokens, logprobs),
    )


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: str | None
    inputs: list[PromptInput]
    encoding_format: str
    dimensions: int | None
    add_special_tokens: bool


def parse_embedding(data: dict[str, Any]) -> EmbeddingRequest:
    """Validate a ``/v1/embeddings`` body."""
    if "input" not in data or data["input"] is None:
        raise ApiError("input: Field required", param="input")
    inputs = _prompts(data["input"], "input")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(
            "encoding_format: Input should be 'float' or 'base64'", param="encoding_format"
        )
    dimensions = _int(data, "dimensions")
    if dimensions is not None and dimensions < 1:
        raise ApiError("dimensions must be at least 1", param="dimensions")
    return EmbeddingRequest(
        model=_model(data),
        inputs=inputs,
        encoding_format=encoding,
        dimensions=dimensions,
        add_special_tokens=_bool(data, "add_special_tokens", True),
    )


@dataclass(frozen=True, slots=True)
class TokenizeRequest:
    model: str | None
    prompt: str | None
    messages: list[dict[str, Any]] | None
    tools: list[Any] | None
    add_special_tokens: bool
    add_generation_prompt: bool
    return_token_strs: bool


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in value
    )


def parse_tokenize(data: dict[str, Any]) -> TokenizeRequest:
    """Validate a ``/tokenize`` body: either ``prompt`` or ``messages``."""
    prompt = data.get("prompt")
    messages = data.get("messages")
    if prompt is None and messages is None:
        raise ApiError("Either `prompt` or `messages` must be provided.")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError("prompt: Input should be a valid string", param="prompt")
    if messages is not None and not _is_message_list(messages):
        raise ApiError("messages: Input should be a list of messages", param="messages")
    tools = data.get("tools")
    return TokenizeRequest(
        model=_model(data),
        prompt=prompt,
        messages=messages,
        tools=tools if isinstance(tools, list) else None,
        add_special_tokens=_bool(data, "add_special_tokens", messages is None),
        add_generation_prompt=_bool(data, "add_generation_prompt", True),
        return_token_strs=_bool(data, "return_token_strs"),
    )


def parse_detokenize(data: dict[str, Any]) -> tuple[str | None, list[int]]:
    """Validate a ``/detokenize`` body: ``(model, tokens)``."""
    ids = data.get("tokens")
    if not isinstance(ids, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in ids
    ):
        raise ApiError("tokens: Input should be a list of integers", param="tokens")
    return _model(data), ids
