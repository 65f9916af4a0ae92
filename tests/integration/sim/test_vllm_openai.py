"""The official openai SDK against the emulator: shapes, determinism, streaming, usage."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from tests.integration.sim.conftest import MODEL
from tests.integration.sim.helpers import Sim, http

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three colours, please."},
]
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(vllm: Sim) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{vllm.url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def _prompt_tokens(vllm: Sim, **body: object) -> int:
    reply = http("POST", f"{vllm.url}/tokenize", {"model": MODEL, **body})
    assert reply.status == 200
    count = reply.json()["count"]
    assert isinstance(count, int)
    return count


def test_chat_completion_shape_and_usage(client: openai.OpenAI, vllm: Sim) -> None:
    result = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.id.startswith("chatcmpl-")
    assert result.object == "chat.completion"
    assert result.model == MODEL
    choice = result.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "stop"
    assert choice.model_extra is not None and choice.model_extra["stop_reason"] is None
    usage = result.usage
    assert usage is not None
    assert usage.prompt_tokens == _prompt_tokens(vllm, messages=MESSAGES)
    assert 16 <= usage.completion_tokens <= 65  # natural length + EOS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_identical_requests_get_identical_content(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=3)
    second = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=3)
    other = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=4)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


def test_stream_content_equals_non_stream_content_and_has_no_usage_unless_asked(
    client: openai.OpenAI,
) -> None:
    full = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks]
    assert finishes[-1] == "stop"
    assert finishes[:-1] == [None] * (len(chunks) - 1)
    assert full.usage is not None
    # one chunk per generated token, plus the role chunk
    assert len(chunks) == full.usage.completion_tokens + 1


def test_stream_with_include_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=7)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and full.usage is not None
    assert last.usage.prompt_tokens == full.usage.prompt_tokens
    assert last.usage.completion_tokens == 7
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "length"


def test_max_tokens_gives_finish_length(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_completion_tokens=5,
    )
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 5


def test_stop_string_finishes_with_stop_reason(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    content = free.choices[0].message.content
    assert content is not None
    stop = content.split(" ")[3]
    result = client.chat.completions.create(model=MODEL, messages=MESSAGES, stop=[stop])
    choice = result.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.model_extra is not None and choice.model_extra["stop_reason"] == stop
    assert choice.message.content == content[: content.index(stop)]


def test_n_choices(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert len({c.message.content for c in result.choices}) == 3
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3, stream=True))
    for choice in result.choices:
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in chunks
            if c.choices and c.choices[0].index == choice.index
        )
        assert streamed == choice.message.content


def test_logprobs_structure(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        logprobs=True,
        top_logprobs=3,
        max_tokens=4,
    )
    logprobs = result.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert len(logprobs.content) == 4
    assert "".join(item.token for item in logprobs.content) == result.choices[0].message.content
    for item in logprobs.content:
        assert item.logprob <= 0
        assert len(item.top_logprobs) == 3
        assert item.top_logprobs[0].token == item.token


def test_required_tool_choice_returns_a_tool_call(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id.startswith("chatcmpl-tool-")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            tools=[WEATHER_TOOL],
            tool_choice="required",
            stream=True,
        )
    )
    deltas = [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]
    assert deltas[0].id and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    streamed = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert json.loads(streamed) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_named_tool_choice(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    calls = result.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert result.choices[0].finish_reason == "stop"  # vLLM: named function → "stop"


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    result = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "colours",
                "schema": {"type": "object", "properties": {"names": {"type": "array"}}},
            },
        },
    )
    content = result.choices[0].message.content
    assert content is not None
    assert isinstance(json.loads(content)["names"], list)


def test_completions_plain_and_streamed(client: openai.OpenAI, vllm: Sim) -> None:
    prompt = "Once upon a time"
    result = client.completions.create(model=MODEL, prompt=prompt)
    assert result.id.startswith("cmpl-")
    assert result.object == "text_completion"
    assert result.usage is not None
    assert result.usage.prompt_tokens == _prompt_tokens(vllm, prompt=prompt)
    assert result.usage.completion_tokens == 16  # vLLM's default max_tokens for completions
    assert result.choices[0].finish_reason == "length"
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=prompt, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == result.choices[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 16
    without = list(client.completions.create(model=MODEL, prompt=prompt, stream=True))
    assert all(c.usage is None for c in without)


def test_embeddings(client: openai.OpenAI, vllm: Sim) -> None:
    result = client.embeddings.create(
        model=MODEL, input=["alpha beta", "gamma"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in result.data)
    assert result.usage.prompt_tokens == 3 + 2
    again = client.embeddings.create(model=MODEL, input="alpha beta", encoding_format="float")
    assert again.data[0].embedding == result.data[0].embedding


def test_models_list(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].owned_by == "vllm"


def test_unknown_model_is_404_with_vllm_error_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no/such-model", messages=MESSAGES)
    assert info.value.status_code == 404
    assert info.value.body == {
        "message": "The model `no/such-model` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


def test_prompt_over_max_model_len_is_400(client: openai.OpenAI) -> None:
    long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=long)
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "BadRequestError" and body["code"] == 400
    assert "maximum context length is 512 tokens" in body["message"]
    with pytest.raises(openai.BadRequestError, match="too large"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=510)
