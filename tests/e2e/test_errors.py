"""Every error the gateway can return: status, OpenAI error shape, code, and headers.

The SDK is used where it exposes the status as a typed exception; malformed bodies and
oversized bodies are sent raw (the SDK cannot produce them).
"""

from __future__ import annotations

import http.client
import time
from typing import Any

import openai
import pytest

from tests.conftest import TEST_KEY, Emulator, Gateway, http_request
from tests.e2e.conftest import MAIN_MAX_MODEL_LEN, MAX_BODY_BYTES, SLOW_TOTAL, SLOW_TTFT, Stack
from tests.e2e.helpers import assert_error_body, sdk_error_body

MESSAGES = [{"role": "user", "content": "Hello there"}]


def _assert_headers(headers: Any, request_id: str | None = None) -> None:
    assert headers.get("x-request-id"), dict(headers)
    if request_id is not None:
        assert headers["x-request-id"] == request_id
    assert headers.get("x-fulcrum-deployment"), dict(headers)
    assert headers["content-type"].startswith("application/json"), dict(headers)


# -- request errors ----------------------------------------------------------------------------


def test_malformed_json_is_400_invalid_json(gw: Gateway) -> None:
    result = http_request(
        "POST",
        f"{gw.base_url}/chat/completions",
        b'{"model": "llama", "messages": [',
        {**gw.auth_headers(), "Content-Type": "application/json", "x-request-id": "bad-json-1"},
    )
    assert result.status == 400
    assert_error_body(result.body, code="invalid_json")
    _assert_headers(result.headers, "bad-json-1")
    assert result.headers["x-fulcrum-deployment"] == "-"


@pytest.mark.parametrize(
    ("endpoint", "payload", "param"),
    [
        ("chat/completions", {"model": "llama"}, "messages"),
        ("chat/completions", {"model": "llama", "messages": "hello"}, "messages"),
        ("chat/completions", {"messages": MESSAGES}, "model"),
        ("completions", {"model": "llama"}, "prompt"),
        ("embeddings", {"model": "llama"}, "input"),
    ],
)
def test_schema_violation_is_400_naming_the_field(
    gw: Gateway, endpoint: str, payload: dict[str, Any], param: str
) -> None:
    result = gw.post(endpoint, payload)
    assert result.status == 400, result.body
    assert_error_body(result.body, code="invalid_request", param=param)
    _assert_headers(result.headers)
    assert result.headers["x-fulcrum-deployment"] == "-"


def test_schema_violation_through_the_sdk(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="llama", messages="not a list")  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    assert_error_body(sdk_error_body(caught.value), code="invalid_request", param="messages")


def test_missing_key_is_401(gw: Gateway) -> None:
    result = http_request(
        "POST",
        f"{gw.base_url}/chat/completions",
        b'{"model": "llama", "messages": [{"role": "user", "content": "hi"}]}',
        {"Content-Type": "application/json"},
    )
    assert result.status == 401
    assert_error_body(result.body, code="missing_api_key")
    _assert_headers(result.headers)
    assert result.headers["x-fulcrum-deployment"] == "-"


def test_unknown_key_is_401(gw: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(api_key="sk-not-a-key-of-this-gateway").chat.completions.create(
            model="llama", messages=MESSAGES
        )
    assert caught.value.status_code == 401
    assert_error_body(sdk_error_body(caught.value), code="invalid_api_key")
    _assert_headers(caught.value.response.headers)


def test_unknown_model_is_404(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(
            model="gpt-nonexistent",
            messages=MESSAGES,
            extra_headers={"x-request-id": "unknown-model-1"},
        )
    assert caught.value.status_code == 404
    assert_error_body(sdk_error_body(caught.value), code="model_not_found", param="model")
    _assert_headers(caught.value.response.headers, "unknown-model-1")
    assert caught.value.response.headers["x-fulcrum-deployment"] == "-"


def test_body_over_the_limit_is_413(gw: Gateway) -> None:
    padding = "x" * (MAX_BODY_BYTES + 1024)
    body = (
        b'{"model": "llama", "messages": [{"role": "user", "content": "'
        + padding.encode()
        + b'"}]}'
    )
    result = http_request(
        "POST",
        f"{gw.base_url}/chat/completions",
        body,
        {**gw.auth_headers(), "Content-Type": "application/json"},
    )
    assert result.status == 413
    assert_error_body(result.body, code="request_too_large")
    _assert_headers(result.headers)


def test_chunked_body_over_the_limit_is_413(gw: Gateway) -> None:
    """Without a Content-Length, the limit still holds while the body is read."""
    piece = b"z" * 65536
    count = MAX_BODY_BYTES // len(piece) + 2
    connection = http.client.HTTPConnection("127.0.0.1", gw.server.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=iter(
                [b'{"model": "llama", "messages": [{"role": "user", "content": "']
                + [piece] * count
                + [b'"}]}']
            ),
            headers={**gw.auth_headers(), "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        status, body = response.status, response.read()
    finally:
        connection.close()
    assert status == 413
    assert_error_body(body, code="request_too_large")


def test_body_over_the_limit_through_the_sdk(gw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "y" * (MAX_BODY_BYTES + 10)}]
        )
    assert caught.value.status_code == 413
    assert_error_body(sdk_error_body(caught.value), code="request_too_large")


def test_unknown_model_on_a_stream_is_a_json_404(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(model="gpt-nonexistent", messages=MESSAGES, stream=True)
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert_error_body(sdk_error_body(caught.value), code="model_not_found", param="model")


def test_unknown_route_is_a_json_error(gw: Gateway) -> None:
    result = http_request("GET", f"{gw.base_url}/no/such/route", headers=gw.auth_headers())
    assert result.status == 404
    assert_error_body(result.body, code=None)
    _assert_headers(result.headers)


def test_wrong_method_is_a_json_error(gw: Gateway) -> None:
    result = http_request("GET", f"{gw.base_url}/chat/completions", headers=gw.auth_headers())
    assert result.status in (404, 405)
    assert_error_body(result.body, code=None)
    _assert_headers(result.headers)


# -- upstream errors ---------------------------------------------------------------------------


def test_unreachable_upstream_is_502(gw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="unreachable", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert_error_body(
        sdk_error_body(caught.value), code="upstream_unreachable", type_="upstream_error"
    )
    _assert_headers(caught.value.response.headers)


def test_unreachable_upstream_stream_is_502(gw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="unreachable", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 502
    assert_error_body(
        sdk_error_body(caught.value), code="upstream_unreachable", type_="upstream_error"
    )


def test_upstream_timeout_before_the_first_token_is_504(
    stack: Stack, slow_emulator: Emulator
) -> None:
    """A stream whose first event does not come within ``ttft`` ends in 504, at once."""
    slow_emulator.set_faults(added_latency_ms=5000)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        stack.gateway.client().chat.completions.create(
            model="slow", messages=MESSAGES, max_tokens=4, stream=True
        )
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert_error_body(sdk_error_body(caught.value), code="upstream_timeout")
    _assert_headers(caught.value.response.headers)
    # The ttft timeout ended the request, well before the total timeout.
    assert SLOW_TTFT <= elapsed < SLOW_TOTAL, elapsed


def test_upstream_timeout_of_a_whole_answer_is_504(stack: Stack, slow_emulator: Emulator) -> None:
    """A non-streaming answer that does not come within ``total`` ends in 504."""
    slow_emulator.set_faults(added_latency_ms=5000)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        stack.gateway.client().chat.completions.create(
            model="slow", messages=MESSAGES, max_tokens=4
        )
    elapsed = time.monotonic() - started
    assert caught.value.status_code == 504
    assert_error_body(sdk_error_body(caught.value), code="upstream_timeout")
    _assert_headers(caught.value.response.headers)
    # The gateway gave up on its own, long before the upstream's 5 s answer.
    assert SLOW_TTFT <= elapsed < 4.0, elapsed


def test_upstream_without_faults_answers_within_the_timeout(
    stack: Stack, slow_emulator: Emulator
) -> None:
    """Control for the 504 test: the same deployment serves normally without the fault."""
    response = stack.gateway.client().chat.completions.create(
        model="slow", messages=MESSAGES, max_tokens=4
    )
    assert response.choices[0].message.content


def _too_long_messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": " ".join(["word"] * (MAIN_MAX_MODEL_LEN * 3))}]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_upstream_400_is_passed_through(stack: Stack, stream: bool) -> None:
    messages = _too_long_messages()
    with pytest.raises(openai.BadRequestError) as direct:
        stack.main.client().chat.completions.create(
            model=stack.main.model, messages=messages, max_tokens=8, stream=stream
        )
    with pytest.raises(openai.BadRequestError) as via:
        stack.gateway.client().chat.completions.create(
            model="llama", messages=messages, max_tokens=8, stream=stream
        )
    assert via.value.status_code == direct.value.status_code == 400
    upstream_message = sdk_error_body(direct.value)["error"]["message"]
    error = assert_error_body(sdk_error_body(via.value), code=None)
    assert error["message"] == upstream_message
    assert via.value.response.headers["x-fulcrum-deployment"] == "vllm-a"


def test_errors_carry_the_client_request_id(gw: Gateway) -> None:
    """x-request-id is echoed on error answers of every kind (auth, routing, upstream)."""
    cases = [
        ({"Authorization": "Bearer wrong-key-123456"}, "llama"),
        ({"Authorization": f"Bearer {TEST_KEY}"}, "no-such-alias"),
        ({"Authorization": f"Bearer {TEST_KEY}"}, "unreachable"),
    ]
    for index, (auth, model) in enumerate(cases):
        request_id = f"err-id-{index}"
        result = http_request(
            "POST",
            f"{gw.base_url}/chat/completions",
            b'{"model": "' + model.encode() + b'", "messages": [{"role": "user", "content": "x"}]}',
            {**auth, "Content-Type": "application/json", "x-request-id": request_id},
        )
        assert result.status >= 400
        assert_error_body(result.body, code=None)
        _assert_headers(result.headers, request_id)
