"""Planning a request: context-length checks, choices, tool calls, structured output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fulcrum.sim.vllm import planner
from fulcrum.sim.vllm import tokenizer as tok
from fulcrum.sim.vllm.errors import ApiError
from fulcrum.sim.vllm.generation import VOCAB_INDEX
from fulcrum.sim.vllm.protocol import parse_chat, parse_completion, parse_embedding
from fulcrum.sim.vllm.settings import Settings

SETTINGS = Settings(model="m", served_model_names=("m",), max_model_len=100)
USER = [{"role": "user", "content": "What is the weather in Paris today?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _chat(**fields: Any) -> planner.ChatPlan:
    return planner.plan_chat(parse_chat({"messages": USER, **fields}, True), SETTINGS)


def test_prompt_at_or_over_max_model_len_is_rejected() -> None:
    planner.check_context(99, None, 100)
    with pytest.raises(ApiError, match="maximum context length is 100 tokens") as info:
        planner.check_context(100, None, 100)
    assert info.value.param == "input_tokens"


def test_prompt_plus_max_tokens_over_max_model_len_is_rejected() -> None:
    planner.check_context(60, 40, 100)
    with pytest.raises(ApiError, match="'max_tokens' or 'max_completion_tokens' is too large"):
        planner.check_context(60, 41, 100)


def test_chat_usage_prompt_tokens_come_from_the_tokenizer() -> None:
    plan = _chat()
    assert plan.prompt_tokens == tok.chat_prompt_tokens(USER)


def test_without_max_tokens_the_limit_is_what_is_left_of_the_context() -> None:
    long_user = [{"role": "user", "content": " ".join(["word"] * 85)}]
    parsed = parse_chat({"messages": long_user, "ignore_eos": True}, True)
    plan = planner.plan_chat(parsed, SETTINGS)
    assert plan.prompt_tokens + plan.choices[0].output.num_tokens == SETTINGS.max_model_len
    assert plan.choices[0].finish_reason == "length"


def test_n_choices_are_distinct_and_indexed() -> None:
    plan = _chat(n=3)
    assert [c.index for c in plan.choices] == [0, 1, 2]
    assert len({c.output.text for c in plan.choices}) == 3


def test_required_tool_choice_finishes_with_tool_calls() -> None:
    plan = _chat(tools=[WEATHER], tool_choice="required")
    choice = plan.choices[0]
    assert choice.tool is not None and choice.tool.name == "get_weather"
    assert choice.tool.call_id.startswith("chatcmpl-tool-")
    assert choice.finish_reason == "tool_calls"
    assert set(json.loads(choice.output.text)) == {"city"}


def test_named_tool_choice_finishes_with_stop_as_vllm_does() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    choice = _chat(tools=[WEATHER], tool_choice=named).choices[0]
    assert choice.tool is not None
    assert choice.finish_reason == "stop"


def test_json_schema_response_format_yields_matching_json() -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        },
    }
    text = _chat(response_format=response_format).choices[0].output.text
    assert isinstance(json.loads(text)["ok"], bool)
    assert isinstance(
        json.loads(_chat(response_format={"type": "json_object"}).choices[0].output.text), dict
    )


def test_chat_logprobs_cover_every_token() -> None:
    choice = _chat(logprobs=True, top_logprobs=2).choices[0]
    assert choice.logprobs is not None
    assert len(choice.logprobs) == choice.output.num_tokens
    assert all(len(e.top) == 2 for e in choice.logprobs)


def test_batched_completion_prompts_get_their_own_choices_and_summed_usage() -> None:
    parsed = parse_completion({"prompt": ["one two", "three"], "n": 2})
    plan = planner.plan_completion(parsed, SETTINGS)
    assert [c.index for c in plan.choices] == [0, 1, 2, 3]
    assert plan.prompt_tokens == 3 + 2
    assert plan.choices[0].output != plan.choices[2].output


def test_echo_prefixes_the_prompt() -> None:
    parsed = parse_completion({"prompt": "say", "echo": True, "max_tokens": 3})
    choice = planner.plan_completion(parsed, SETTINGS).choices[0]
    assert choice.prefix == "say"


def test_embedding_dimensions_and_too_long_input() -> None:
    plan = planner.plan_embedding(parse_embedding({"input": ["a", "b"], "dimensions": 8}), SETTINGS)
    assert [len(v) for v in plan.vectors] == [8, 8]
    assert plan.prompt_tokens == 4
    with pytest.raises(ApiError, match="embedding generation"):
        planner.plan_embedding(parse_embedding({"input": "x " * 100}), SETTINGS)


def test_detokenize_round_trips_vocabulary_ids() -> None:
    comma = tok.VOCAB_OFFSET + VOCAB_INDEX[","]
    assert planner.detokenize([tok.BOS_ID, 100, comma, 101]) == "the, of"
    assert planner.detokenize([99_999]) == "<|99999|>"
