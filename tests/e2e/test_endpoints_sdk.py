"""Legacy completions, embeddings, the model list and the probes, through the ``openai`` SDK."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import Gateway, http_request
from tests.e2e.conftest import Stack
from tests.e2e.helpers import (
    assert_error_body,
    sdk_error_body,
    stable,
    summarize_stream,
    token_counts,
    wait_token_counts,
)

ALIASES = {"llama", "fallback", "unreachable", "slow", "faulty", "flaky", "paced"}


def test_completions_equal_the_emulator(stack: Stack) -> None:
    params = {"prompt": "Once upon a time", "max_tokens": 16}
    direct = stack.main.client().completions.create(model=stack.main.model, **params)
    raw = stack.gateway.client().completions.with_raw_response.create(model="llama", **params)
    via = raw.parse()
    assert via.choices[0].text
    assert via.choices[0].text == direct.choices[0].text
    assert stable(via) == stable(direct)
    assert raw.headers["x-fulcrum-deployment"] == "vllm-a"


def test_streaming_completions_equal_the_emulator(stack: Stack) -> None:
    params = {"prompt": "Once upon a time", "max_tokens": 16}
    direct = stack.main.client().completions.create(model=stack.main.model, **params)
    assert direct.usage is not None
    before = token_counts(stack.gateway.metrics(), "vllm-a")

    via = summarize_stream(
        stack.gateway.client().completions.create(model="llama", stream=True, **params)
    )

    assert via.content == {0: direct.choices[0].text}
    assert via.finish_reasons[0] == direct.choices[0].finish_reason
    assert via.usage == []
    expected = (
        before[0] + direct.usage.prompt_tokens,
        before[1] + direct.usage.completion_tokens,
    )
    assert wait_token_counts(stack.gateway, "vllm-a", expected) == expected


def test_streaming_completions_forward_usage_when_asked(stack: Stack) -> None:
    params = {"prompt": "Once upon a time", "max_tokens": 16}
    direct = stack.main.client().completions.create(model=stack.main.model, **params)
    via = summarize_stream(
        stack.gateway.client().completions.create(
            model="llama", stream=True, stream_options={"include_usage": True}, **params
        )
    )
    assert direct.usage is not None
    assert via.usage == [direct.usage.model_dump(exclude_none=True)]


def test_embeddings_equal_the_emulator(stack: Stack) -> None:
    inputs = ["the quick brown fox", "jumps over the lazy dog"]
    direct = stack.main.client().embeddings.create(model=stack.main.model, input=inputs)
    raw = stack.gateway.client().embeddings.with_raw_response.create(model="llama", input=inputs)
    via = raw.parse()
    assert len(via.data) == 2
    assert [d.embedding for d in via.data] == [d.embedding for d in direct.data]
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens
    assert raw.headers["x-fulcrum-deployment"] == "vllm-a"


def test_models_list_names_every_alias(gw: Gateway) -> None:
    raw = gw.client().models.with_raw_response.list()
    document = raw.http_response.json()
    assert document["object"] == "list"
    assert {card["id"] for card in document["data"]} == ALIASES
    for card in document["data"]:
        assert card["object"] == "model"
        assert card["owned_by"] == "fulcrum"
        assert isinstance(card["created"], int)
    assert raw.headers["x-fulcrum-deployment"] == "-"
    assert {model.id for model in gw.client().models.list()} == ALIASES


def test_models_retrieve(gw: Gateway) -> None:
    model = gw.client().models.retrieve("llama")
    assert (model.id, model.object, model.owned_by) == ("llama", "model", "fulcrum")
    assert isinstance(model.created, int)


def test_models_retrieve_unknown_is_404(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().models.retrieve("no-such-model")
    assert caught.value.status_code == 404
    assert_error_body(sdk_error_body(caught.value), code="model_not_found")
    assert caught.value.response.headers["x-fulcrum-deployment"] == "-"


def test_healthz_is_always_ok(gw: Gateway) -> None:
    result = http_request("GET", f"{gw.url}/healthz")
    assert result.status == 200
    assert result.headers.get("x-request-id")


def test_readyz_is_ok_with_a_live_deployment(gw: Gateway) -> None:
    assert http_request("GET", f"{gw.url}/readyz").status == 200


def test_metrics_is_prometheus_text(gw: Gateway) -> None:
    result = http_request("GET", f"{gw.url}/metrics")
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/plain")
    # Every metric family of the contract is exposed once traffic has flowed.
    stream = gw.client().chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hi"}], max_tokens=2, stream=True
    )
    assert list(stream)
    gw.client().chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    names = {sample.name for sample in gw.metrics()}
    for name in (
        "fulcrum_requests_total",
        "fulcrum_request_duration_seconds_bucket",
        "fulcrum_time_to_first_token_seconds_bucket",
        "fulcrum_tokens_total",
    ):
        assert name in names, name
