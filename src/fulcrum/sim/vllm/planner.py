"""Turn a validated request into its complete, deterministic result before any time passes.

The whole output is decided up front (it is a pure function of the request), and the timing
model then only decides *when* each token is released. Length checks reproduce vLLM's
``_validate_input`` messages, including its rule that prompt + ``max_tokens`` must fit in
``max_model_len``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fulcrum.sim.vllm import generation as gen
from fulcrum.sim.vllm import tokenizer as tok
from fulcrum.sim.vllm.errors import ApiError
from fulcrum.sim.vllm.protocol import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    PromptInput,
    Sampling,
)
from fulcrum.sim.vllm.settings import Settings
from fulcrum.sim.vllm.wire import ChatChoice, CompletionChoice, ToolCall, random_id


def check_context(prompt_tokens: int, max_tokens: int | None, max_model_len: int) -> None:
    """Raise vLLM's 400 when the prompt, or prompt + max_tokens, exceeds the context."""
    if prompt_tokens >= max_model_len:
        raise ApiError(
            f"This model's maximum context length is {max_model_len} tokens. However, your "
            f"request has {prompt_tokens} input tokens. Please reduce the length of the "
            "input messages.",
            param="input_tokens",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise ApiError(
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This "
            f"model's maximum context length is {max_model_len} tokens and your request has "
            f"{prompt_tokens} input tokens ({max_tokens} > {max_model_len} - {prompt_tokens}).",
            param="max_tokens",
        )


def _limits(sampling: Sampling, prompt_tokens: int, max_model_len: int) -> gen.Limits:
    max_tokens = sampling.max_tokens
    if max_tokens is None:
        max_tokens = max_model_len - prompt_tokens
    return gen.Limits(
        max_tokens=max_tokens,
        min_tokens=sampling.min_tokens,
        stop=sampling.stop,
        include_stop_str_in_output=sampling.include_stop_str_in_output,
        ignore_eos=sampling.ignore_eos,
    )


@dataclass(frozen=True, slots=True)
class ChatPlan:
    prompt_tokens: int
    choices: list[ChatChoice]


def plan_chat(req: ChatRequest, settings: Settings) -> ChatPlan:
    """All choices of a chat request, with usage-ready token counts."""
    prompt_tokens = tok.chat_prompt_tokens(req.messages, req.tools, req.add_generation_prompt)
    check_context(prompt_tokens, req.sampling.max_tokens, settings.max_model_len)
    limits = _limits(req.sampling, prompt_tokens, settings.max_model_len)
    key = gen.canonical_json(req.messages)
    natural = (settings.min_output_tokens, settings.max_output_tokens)
    choices: list[ChatChoice] = []
    for index in range(req.sampling.n):
        seed = gen.request_seed(settings.served_name, key, req.sampling.seed, index)
        tool: ToolCall | None = None
        forced = req.forced_tool
        if forced is not None:
            output = gen.json_output(seed, gen.value_for_schema(forced.parameters, seed), limits)
            tool = ToolCall(call_id=f"chatcmpl-tool-{random_id()}", name=forced.name)
            finish = output.finish_reason
            if not forced.named and finish == "stop":
                finish = "tool_calls"  # vLLM: "required" → tool_calls, named → stop
        else:
            output = _chat_text(req.response_format, seed, limits, natural)
            finish = output.finish_reason
        logprobs = None
        if req.sampling.logprobs is not None:
            logprobs = gen.token_logprobs(seed, output.tokens, req.sampling.logprobs)
        choices.append(ChatChoice(index, output, finish, tool, logprobs))
    return ChatPlan(prompt_tokens, choices)


def _chat_text(
    response_format: dict[str, Any] | None,
    seed: int,
    limits: gen.Limits,
    natural: tuple[int, int],
) -> gen.ChoiceOutput:
    kind = response_format.get("type") if response_format else None
    if kind == "json_schema" and response_format is not None:
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", spec.get("json_schema"))
        return gen.json_output(seed, gen.value_for_schema(schema, seed), limits)
    if kind == "json_object":
        return gen.json_output(seed, gen.json_object_value(seed), limits)
    return gen.text_output(seed, limits, natural)


def prompt_key(prompt: PromptInput) -> bytes:
    return prompt.encode("utf-8") if isinstance(prompt, str) else gen.canonical_json(prompt)


def prompt_tokens_of(prompt: PromptInput, add_special_tokens: bool) -> int:
    if isinstance(prompt, str):
        return tok.text_prompt_tokens(prompt, add_special_tokens)
    return len(prompt)


def detokenize(ids: list[int]) -> str:
    """Text for token ids: generated tokens round-trip, specials are skipped, others ``<|id|>``."""
    out: list[str] = []
    for token_id in ids:
        if 0 <= token_id < tok.VOCAB_OFFSET:
            continue  # special tokens are skipped, as with skip_special_tokens
        index = token_id - tok.VOCAB_OFFSET
        if 0 <= index < len(gen.TOKEN_TABLE):
            token = gen.TOKEN_TABLE[index]
            glue = not out or token in gen.PUNCTUATION
            out.append(token if glue else " " + token)
        else:
            out.append(f"{'' if not out else ' '}<|{token_id}|>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class CompletionPlan:
    prompt_tokens: int
    """Summed over prompts, as usage reports it (and as the scheduler prefills them)."""
    choices: list[CompletionChoice]


def plan_completion(req: CompletionRequest, settings: Settings) -> CompletionPlan:
    """All choices of a (possibly batched) completion request."""
    natural = (settings.min_output_tokens, settings.max_output_tokens)
    total = 0
    choices: list[CompletionChoice] = []
    n = req.sampling.n
    for prompt_index, prompt in enumerate(req.prompts):
        count = prompt_tokens_of(prompt, req.add_special_tokens)
        check_context(count, req.sampling.max_tokens, settings.max_model_len)
        total += count
        limits = _limits(req.sampling, count, settings.max_model_len)
        key = prompt_key(prompt)
        prefix = ""
        if req.echo:
            prefix = prompt if isinstance(prompt, str) else detokenize(prompt)
        for index in range(n):
            seed = gen.request_seed(settings.served_name, key, req.sampling.seed, index)
            output = gen.text_output(seed, limits, natural)
            logprobs = None
            if req.sampling.logprobs is not None:
                top = max(1, req.sampling.logprobs)
                logprobs = gen.token_logprobs(seed, output.tokens, top)
            choices.append(CompletionChoice(prompt_index * n + index, output, prefix, logprobs))
    return CompletionPlan(total, choices)


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    prompt_tokens: int
    vectors: list[list[float] | str]


def plan_embedding(req: EmbeddingRequest, settings: Settings) -> EmbeddingPlan:
    """One deterministic unit vector per input."""
    dims = req.dimensions or settings.embedding_dim
    total = 0
    vectors: list[list[float] | str] = []
    for item in req.inputs:
        count = prompt_tokens_of(item, req.add_special_tokens)
        if count > settings.max_model_len:
            raise ApiError(
                f"This model's maximum context length is {settings.max_model_len} tokens. "
                f"However, you requested {count} tokens in the input for embedding "
                "generation. Please reduce the length of the input.",
                param="input_tokens",
            )
        total += count
        seed = gen.request_seed(settings.served_name, prompt_key(item), None, 0)
        vector = gen.embedding(seed, dims)
        vectors.append(gen.embedding_base64(vector) if req.encoding_format == "base64" else vector)
    return EmbeddingPlan(total, vectors)
