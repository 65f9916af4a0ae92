"""Chat completions through the gateway with the official ``openai`` SDK.

The reference for every answer is the emulator itself: the same request is sent to it directly
(with the deployment's upstream model id) and the gateway must deliver the same content, the
same usage and, for non-streaming calls, the upstream's bytes unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import TEST_KEY_GLOBEX, Emulator, Gateway, metric_value, poll_until
from tests.e2e.conftest import Stack
from tests.e2e.helpers import (
    assert_error_body,
    sdk_error_body,
    stable,
    summarize_stream,
    token_counts,
    usage_numbers,
    wait_token_counts,
)

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three rivers of South America."},
]


def _direct_and_gateway(stack: Stack, **params: Any) -> tuple[Any, Any]:
    direct = stack.main.client().chat.completions.create(model=stack.main.model, **params)
    via = stack.gateway.client().chat.completions.create(model="llama", **params)
    return direct, via


def test_non_streaming_content_and_usage_equal_the_emulator(stack: Stack) -> None:
    direct, via = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=24)

    assert via.choices[0].message.content
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.choices[0].finish_reason == direct.choices[0].finish_reason
    assert usage_numbers(via.usage) == usage_numbers(direct.usage)
    assert stable(via) == stable(direct)
    # The upstream saw its own model id: the gateway rewrote the alias.
    assert via.model == stack.main.model


def test_non_streaming_body_is_the_upstream_bytes(stack: Stack) -> None:
    request = {"messages": MESSAGES, "max_tokens": 16}
    direct = stack.main.client().chat.completions.with_raw_response.create(
        model=stack.main.model, **request
    )
    via = stack.gateway.client().chat.completions.with_raw_response.create(model="llama", **request)
    direct_bytes, via_bytes = direct.http_response.content, via.http_response.content
    direct_doc, via_doc = json.loads(direct_bytes), json.loads(via_bytes)
    # Only the per-response identity may differ; put the emulator's in and compare bytes.
    patched = via_bytes
    for key in ("id", "created"):
        patched = patched.replace(
            json.dumps(via_doc[key]).encode(), json.dumps(direct_doc[key]).encode(), 1
        )
    assert patched == direct_bytes
    assert via.headers["x-fulcrum-deployment"] == "vllm-a"


def test_streaming_content_equals_the_emulator_and_hides_usage(stack: Stack) -> None:
    gateway = stack.gateway
    params: dict[str, Any] = {"messages": MESSAGES, "max_tokens": 32, "stream": True}
    direct = summarize_stream(
        stack.main.client().chat.completions.create(
            model=stack.main.model, stream_options={"include_usage": True}, **params
        )
    )
    before = token_counts(gateway.metrics(), "vllm-a")

    via = summarize_stream(gateway.client().chat.completions.create(model="llama", **params))

    assert via.content[0]
    assert via.content == direct.content
    assert via.finish_reasons == direct.finish_reasons
    assert via.finish_reasons[0] is not None
    # Not asked for: the usage chunk the gateway requested upstream is not forwarded.
    assert via.usage == []
    # ... but it was read and counted.
    prompt, completion, _ = usage_numbers(direct.usage[-1])
    expected = (before[0] + prompt, before[1] + completion)
    assert wait_token_counts(gateway, "vllm-a", expected) == expected


def test_long_stream_arrives_intact(stack: Stack) -> None:
    """Hundreds of events (split across many TCP reads) pass through unchanged."""
    params: dict[str, Any] = {
        "messages": MESSAGES,
        "max_tokens": 900,
        "stream": True,
        "extra_body": {"ignore_eos": True},
    }
    direct = summarize_stream(
        stack.main.client().chat.completions.create(model=stack.main.model, **params)
    )
    via = summarize_stream(stack.gateway.client().chat.completions.create(model="llama", **params))
    assert direct.chunks > 900
    assert via.content == direct.content
    assert via.chunks == direct.chunks
    assert via.finish_reasons == {0: "length"}


def test_streaming_with_include_usage_forwards_the_usage_chunk(stack: Stack) -> None:
    gateway = stack.gateway
    params: dict[str, Any] = {
        "messages": MESSAGES,
        "max_tokens": 20,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    direct_chunks = list(
        stack.main.client().chat.completions.create(model=stack.main.model, **params)
    )
    before = token_counts(gateway.metrics(), "vllm-a")

    via_chunks = list(gateway.client().chat.completions.create(model="llama", **params))

    via, direct = summarize_stream(via_chunks), summarize_stream(direct_chunks)
    assert via.content == direct.content
    assert len(via.usage) == 1
    assert via.usage == direct.usage
    last = via_chunks[-1]
    assert last.choices == [] and last.usage is not None
    prompt, completion, _ = usage_numbers(last.usage)
    expected = (before[0] + prompt, before[1] + completion)
    assert wait_token_counts(gateway, "vllm-a", expected) == expected


def test_non_streaming_usage_is_counted(stack: Stack) -> None:
    gateway = stack.gateway
    before = token_counts(gateway.metrics(), "vllm-a")
    response = gateway.client().chat.completions.create(
        model="llama", messages=MESSAGES, max_tokens=12
    )
    assert response.usage is not None
    expected = (
        before[0] + response.usage.prompt_tokens,
        before[1] + response.usage.completion_tokens,
    )
    assert wait_token_counts(gateway, "vllm-a", expected) == expected


def test_request_and_latency_metrics(stack: Stack) -> None:
    gateway = stack.gateway
    labels = {"deployment": "vllm-a"}
    before = gateway.metrics()
    client = gateway.client()
    client.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=4)
    list(
        client.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=4, stream=True)
    )

    def grown() -> bool:
        after = gateway.metrics()
        return (
            metric_value(after, "fulcrum_requests_total", **labels)
            >= metric_value(before, "fulcrum_requests_total", **labels) + 2
        )

    poll_until(grown, 5.0, what="fulcrum_requests_total grows by 2")
    after = gateway.metrics()
    ok = [
        s
        for s in after
        if s.name == "fulcrum_requests_total" and s.labels.get("deployment") == "vllm-a"
    ]
    assert ok and all({"model", "deployment", "status"} <= set(s.labels) for s in ok)
    assert any(s.labels["model"] == "llama" and s.labels["status"] == "200" for s in ok), ok
    for histogram in ("fulcrum_request_duration_seconds", "fulcrum_time_to_first_token_seconds"):
        count = f"{histogram}_count"
        assert metric_value(after, count, **labels) > metric_value(before, count, **labels)
        buckets = [s for s in after if s.name == f"{histogram}_bucket"]
        assert buckets and all({"model", "deployment", "le"} <= set(s.labels) for s in buckets)


def test_tools_and_tool_choice_pass_through(stack: Stack) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    params: dict[str, Any] = {
        "messages": [{"role": "user", "content": "Weather in Lima?"}],
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 64,
    }
    direct, via = _direct_and_gateway(stack, **params)
    assert via.choices[0].message.tool_calls, via
    call = via.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == json.loads(
        direct.choices[0].message.tool_calls[0].function.arguments
    )
    assert stable(via.choices) == stable(direct.choices)

    streamed = summarize_stream(
        stack.gateway.client().chat.completions.create(model="llama", stream=True, **params)
    )
    assert streamed.tool_calls[0][0]["name"] == "get_weather"
    assert json.loads(streamed.tool_calls[0][0]["arguments"]) == json.loads(call.function.arguments)


def test_n_returns_the_upstream_choices(stack: Stack) -> None:
    direct, via = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=8, n=3, seed=7)
    assert len(via.choices) == 3
    assert len({choice.message.content for choice in via.choices}) > 1
    assert stable(via.choices) == stable(direct.choices)
    assert usage_numbers(via.usage) == usage_numbers(direct.usage)

    streamed = summarize_stream(
        stack.gateway.client().chat.completions.create(
            model="llama", messages=MESSAGES, max_tokens=8, n=3, seed=7, stream=True
        )
    )
    assert streamed.content == {c.index: c.message.content for c in direct.choices}


def test_stop_passes_through(stack: Stack) -> None:
    unstopped, _ = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=24)
    words = (unstopped.choices[0].message.content or "").split()
    assert len(words) >= 3, unstopped
    stop = words[2]
    direct, via = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=24, stop=[stop])
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.choices[0].finish_reason == direct.choices[0].finish_reason == "stop"
    assert len(via.choices[0].message.content or "") < len(
        unstopped.choices[0].message.content or ""
    )


def test_seed_passes_through(stack: Stack) -> None:
    first, via_first = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=16, seed=1)
    second, via_second = _direct_and_gateway(stack, messages=MESSAGES, max_tokens=16, seed=2)
    assert via_first.choices[0].message.content == first.choices[0].message.content
    assert via_second.choices[0].message.content == second.choices[0].message.content
    # The seed changes the emulator's output, so equality above proves it was forwarded.
    assert first.choices[0].message.content != second.choices[0].message.content


def test_other_parameters_pass_through(stack: Stack) -> None:
    params: dict[str, Any] = {
        "messages": MESSAGES,
        "max_tokens": 8,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "end-user-42",
        "response_format": {"type": "json_object"},
        "temperature": 0.5,
    }
    direct, via = _direct_and_gateway(stack, **params)
    assert stable(via.choices) == stable(direct.choices)


def test_request_id_is_echoed(gw: Gateway) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(
        model="llama",
        messages=MESSAGES,
        max_tokens=4,
        extra_headers={"x-request-id": "e2e-req-0001"},
    )
    assert raw.headers["x-request-id"] == "e2e-req-0001"
    assert raw.headers["x-fulcrum-deployment"] == "vllm-a"
    assert raw.parse().choices


def test_request_id_is_generated_when_absent(gw: Gateway) -> None:
    client = gw.client()
    ids = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="llama", messages=MESSAGES, max_tokens=4
        )
        ids.append(raw.headers.get("x-request-id"))
    assert all(ids) and ids[0] != ids[1], ids


def test_streaming_response_carries_the_headers(gw: Gateway) -> None:
    with gw.client().chat.completions.with_streaming_response.create(
        model="llama",
        messages=MESSAGES,
        max_tokens=4,
        stream=True,
        extra_headers={"x-request-id": "e2e-stream-7"},
    ) as response:
        assert response.headers["x-request-id"] == "e2e-stream-7"
        assert response.headers["x-fulcrum-deployment"] == "vllm-a"
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b"".join(response.iter_bytes())
    assert body.rstrip().endswith(b"data: [DONE]")


def test_key_given_by_sha256_is_accepted(gw: Gateway) -> None:
    response = gw.client(api_key=TEST_KEY_GLOBEX).chat.completions.create(
        model="llama", messages=MESSAGES, max_tokens=4
    )
    assert response.choices[0].message.content


@pytest.mark.parametrize("alias", ["fallback"])
def test_fallback_skips_a_dead_deployment(stack: Stack, alias: str) -> None:
    direct = stack.main.client().chat.completions.create(
        model=stack.main.model, messages=MESSAGES, max_tokens=12
    )
    raw = stack.gateway.client().chat.completions.with_raw_response.create(
        model=alias, messages=MESSAGES, max_tokens=12
    )
    assert raw.status_code == 200
    assert raw.headers["x-fulcrum-deployment"] == "vllm-a"
    assert raw.parse().choices[0].message.content == direct.choices[0].message.content


def test_fallback_stream_skips_a_dead_deployment(stack: Stack) -> None:
    with stack.gateway.client().chat.completions.with_streaming_response.create(
        model="fallback", messages=MESSAGES, max_tokens=12, stream=True
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-fulcrum-deployment"] == "vllm-a"
        summary = summarize_stream(response.parse())
    direct = stack.main.client().chat.completions.create(
        model=stack.main.model, messages=MESSAGES, max_tokens=12
    )
    assert summary.content[0] == direct.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_retryable_upstream_failure_falls_back_to_the_next_deployment(
    stack: Stack, faulty_emulator: Emulator, stream: bool
) -> None:
    """``flaky`` = [vllm-faulty, vllm-a]; vllm-faulty's /health is good but it answers 500."""
    faulty_emulator.set_faults(error_rate=1.0, error_status=500)
    client = stack.gateway.client()
    # Control: the faulty deployment alone does fail.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="faulty", messages=MESSAGES, max_tokens=8)
    assert caught.value.status_code >= 500
    assert_error_body(sdk_error_body(caught.value), code=None)
    assert caught.value.response.headers["x-fulcrum-deployment"] == "vllm-faulty"

    direct = stack.main.client().chat.completions.create(
        model=stack.main.model, messages=MESSAGES, max_tokens=8
    )
    with client.chat.completions.with_streaming_response.create(
        model="flaky", messages=MESSAGES, max_tokens=8, stream=stream
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-fulcrum-deployment"] == "vllm-a"
        parsed = response.parse()
        if stream:
            content = summarize_stream(parsed).content[0]
        else:
            content = parsed.choices[0].message.content
    assert content == direct.choices[0].message.content


def test_upstream_4xx_does_not_fall_back(stack: Stack, faulty_emulator: Emulator) -> None:
    """A client error is the client's: it is returned, not retried on the next deployment."""
    faulty_emulator.set_faults(error_rate=1.0, error_status=400, error_message="bad input here")
    with pytest.raises(openai.BadRequestError) as caught:
        stack.gateway.client().chat.completions.create(
            model="flaky", messages=MESSAGES, max_tokens=8
        )
    assert caught.value.status_code == 400
    assert caught.value.response.json()["error"]["message"] == "bad input here"
    assert caught.value.response.headers["x-fulcrum-deployment"] == "vllm-faulty"
