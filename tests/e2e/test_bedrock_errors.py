"""Bedrock errors through the gateway: status, OpenAI error body, fail-over, mid-stream exceptions.

Faults are injected into the ``faulty`` emulator (``error_rate: 1.0``); the alias ``faulty`` is
served by it alone, ``flaky`` by it and then by ``br-healthy`` on the ``main`` emulator. The
emulators' ``/admin/stats`` count every call per model id, so "not retried" and "the healthy
deployment got nothing" are observed at the upstream, not inferred from the gateway.

Expected mapping (the issue's list): ThrottlingException 429, ModelNotReadyException and
ServiceUnavailableException 503, InternalServerException 500, ModelTimeoutException 504 — all
retryable, so another deployment serves the request; ValidationException 400,
AccessDeniedException 403, ResourceNotFoundException 404, ModelErrorException 424 — returned at
once.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import openai
import pytest

from tests.conftest import metric_value, poll_until
from tests.e2e.bedrock_fixtures import (
    HAIKU,
    HAIKU_EU,
    HAIKU_GLOBAL,
    SONNET_US,
    BedrockEmulator,
    BedrockStack,
    error_events,
    stream_reference,
)
from tests.e2e.helpers import assert_error_body, sdk_error_body, sse_events

MESSAGES = [{"role": "user", "content": "Which river crosses Manaus?"}]
CONVERSE_MESSAGES = [{"role": "user", "content": [{"text": "Which river crosses Manaus?"}]}]

# (Bedrock exception, gateway status, OpenAI error type or None, SDK exception, retryable)
ERRORS: list[tuple[str, int, str | None, type[openai.APIStatusError], bool]] = [
    ("ThrottlingException", 429, "rate_limit_error", openai.RateLimitError, True),
    ("ModelNotReadyException", 503, None, openai.InternalServerError, True),
    ("ServiceUnavailableException", 503, None, openai.InternalServerError, True),
    ("InternalServerException", 500, None, openai.InternalServerError, True),
    ("ModelTimeoutException", 504, None, openai.InternalServerError, True),
    ("ValidationException", 400, "invalid_request_error", openai.BadRequestError, False),
    ("AccessDeniedException", 403, "permission_error", openai.PermissionDeniedError, False),
    ("ResourceNotFoundException", 404, None, openai.NotFoundError, False),
    ("ModelErrorException", 424, None, openai.APIStatusError, False),
]
ERROR_IDS = [name for name, *_ in ERRORS]
RETRYABLE = [e for e in ERRORS if e[4]]
NOT_RETRYABLE = [e for e in ERRORS if not e[4]]


def _requests_total(stack: BedrockStack, model: str, deployment: str, status: int) -> float:
    return metric_value(
        stack.gateway.metrics(),
        "fulcrum_requests_total",
        model=model,
        deployment=deployment,
        status=str(status),
    )


def _wait_requests_total(
    stack: BedrockStack, model: str, deployment: str, status: int, expected: float
) -> None:
    poll_until(
        lambda: _requests_total(stack, model, deployment, status) >= expected,
        5,
        what=f"fulcrum_requests_total{{{model},{deployment},{status}}} reaches {expected}",
    )
    assert _requests_total(stack, model, deployment, status) == expected


# -- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "type_", "sdk_error", "retryable"), ERRORS, ids=ERROR_IDS
)
def test_bedrock_error_status_and_body(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    name: str,
    status: int,
    type_: str | None,
    sdk_error: type[openai.APIStatusError],
    retryable: bool,
) -> None:
    faulty_bedrock.set_faults(error_rate=1.0, error_type=name)
    before = faulty_bedrock.count(HAIKU, "Converse")
    requests_before = _requests_total(bedrock_stack, "faulty", "br-faulty", status)

    with pytest.raises(openai.APIStatusError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(model="faulty", messages=MESSAGES)

    assert type(caught.value) is sdk_error
    assert caught.value.status_code == status
    error = assert_error_body(sdk_error_body(caught.value), code=name, type_=type_)
    assert name in error["message"]
    headers = caught.value.response.headers
    assert headers["x-fulcrum-deployment"] == "br-faulty"
    assert headers["content-type"].startswith("application/json")
    assert headers.get("x-request-id")
    # One call: the gateway does not retry the same deployment (the router may fail over).
    assert faulty_bedrock.count(HAIKU, "Converse") - before == 1
    _wait_requests_total(bedrock_stack, "faulty", "br-faulty", status, requests_before + 1)


@pytest.mark.parametrize(
    ("name", "status", "type_", "sdk_error", "retryable"), ERRORS, ids=ERROR_IDS
)
def test_bedrock_error_on_a_stream_request_is_a_json_error(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    name: str,
    status: int,
    type_: str | None,
    sdk_error: type[openai.APIStatusError],
    retryable: bool,
) -> None:
    """An HTTP error of ConverseStream arrives before any SSE byte: a plain JSON error."""
    faulty_bedrock.set_faults(error_rate=1.0, error_type=name)
    before = faulty_bedrock.count(HAIKU, "ConverseStream")
    result = bedrock_stack.gateway.post(
        "chat/completions", {"model": "faulty", "messages": MESSAGES, "stream": True}
    )
    assert result.status == status, result.body
    assert result.headers["content-type"].startswith("application/json")
    assert_error_body(result.body, code=name, type_=type_)
    assert faulty_bedrock.count(HAIKU, "ConverseStream") - before == 1


# -- fail-over ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("name", "status", "type_", "sdk_error", "retryable"),
    RETRYABLE,
    ids=[e[0] for e in RETRYABLE],
)
def test_retryable_error_falls_back_to_the_healthy_deployment(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    name: str,
    status: int,
    type_: str | None,
    sdk_error: type[openai.APIStatusError],
    retryable: bool,
    stream: bool,
) -> None:
    main = bedrock_stack.main
    faulty_bedrock.set_faults(error_rate=1.0, error_type=name)
    operation = "ConverseStream" if stream else "Converse"
    faulty_before = faulty_bedrock.count(HAIKU, operation)
    healthy_before = main.count(HAIKU_EU, operation)

    raw = bedrock_stack.gateway.client().chat.completions.with_raw_response.create(
        model="flaky", messages=MESSAGES, max_tokens=24, stream=stream
    )

    assert raw.http_response.status_code == 200
    assert raw.headers["x-fulcrum-deployment"] == "br-healthy"
    assert raw.headers["x-fulcrum-attempts"] == "2"
    assert raw.headers["x-fulcrum-fallback"] == f"br-faulty:{name}"
    assert faulty_bedrock.count(HAIKU, operation) - faulty_before == 1
    assert main.count(HAIKU_EU, operation) - healthy_before == 1

    reference = stream_reference(
        main.boto(), modelId=HAIKU_EU, messages=CONVERSE_MESSAGES, inferenceConfig={"maxTokens": 24}
    )
    parsed: Any = raw.parse()
    if stream:
        content = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices)
    else:
        content = parsed.choices[0].message.content
    assert content == reference["text"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("name", "status", "type_", "sdk_error", "retryable"),
    NOT_RETRYABLE,
    ids=[e[0] for e in NOT_RETRYABLE],
)
def test_non_retryable_error_is_returned_at_once(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    name: str,
    status: int,
    type_: str | None,
    sdk_error: type[openai.APIStatusError],
    retryable: bool,
    stream: bool,
) -> None:
    main = bedrock_stack.main
    faulty_bedrock.set_faults(error_rate=1.0, error_type=name)
    faulty_before = faulty_bedrock.count(HAIKU)
    healthy_before = main.count(HAIKU_EU)

    with pytest.raises(openai.APIStatusError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(
            model="flaky", messages=MESSAGES, stream=stream
        )

    assert caught.value.status_code == status
    assert_error_body(sdk_error_body(caught.value), code=name, type_=type_)
    headers = caught.value.response.headers
    assert headers["x-fulcrum-deployment"] == "br-faulty"
    assert "x-fulcrum-fallback" not in headers
    assert faulty_bedrock.count(HAIKU) - faulty_before == 1
    assert main.count(HAIKU_EU) - healthy_before == 0


# -- authentication failures at Bedrock -------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "model_id", "code"),
    [
        ("badsig", HAIKU_GLOBAL, "InvalidSignatureException"),
        ("badkey", SONNET_US, "UnrecognizedClientException"),
    ],
    ids=["wrong-sigv4-secret", "wrong-api-key"],
)
def test_bedrock_authentication_failure_is_403_not_retried(
    bedrock_stack: BedrockStack, alias: str, model_id: str, code: str
) -> None:
    main = bedrock_stack.main
    before, healthy_before = main.count(model_id), main.count(HAIKU_EU)
    errors_before = main.stats()["errors"].get(code, 0)

    with pytest.raises(openai.PermissionDeniedError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(model=alias, messages=MESSAGES)

    assert caught.value.status_code == 403
    assert_error_body(sdk_error_body(caught.value), code=code, type_="permission_error")
    assert main.count(model_id) - before == 1  # one call, not retried
    assert main.count(HAIKU_EU) - healthy_before == 0  # and no fail-over
    assert main.stats()["errors"].get(code, 0) - errors_before == 1  # Bedrock refused it


# -- exceptions inside the event stream ---------------------------------------------------------

STREAM_EXCEPTIONS = [
    ("modelStreamErrorException", "ModelStreamErrorException", 424),
    ("throttlingException", "ThrottlingException", 429),
    ("internalServerException", "InternalServerException", 500),
    ("serviceUnavailableException", "ServiceUnavailableException", 503),
    ("validationException", "ValidationException", 400),
]


@pytest.mark.parametrize(
    ("member", "name", "status"), STREAM_EXCEPTIONS, ids=[e[0] for e in STREAM_EXCEPTIONS]
)
def test_mid_stream_exception_ends_the_stream_with_an_error_event(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    member: str,
    name: str,
    status: int,
) -> None:
    faulty_bedrock.set_faults(stream_exception_after_events=4, stream_exception_type=member)
    failures_before = _requests_total(bedrock_stack, "faulty", "br-faulty", status)
    calls_before = faulty_bedrock.count(HAIKU, "ConverseStream")
    payload = {"model": "faulty", "messages": MESSAGES, "stream": True}

    # The SDK raises when it reads the error event.
    stream = bedrock_stack.gateway.client().chat.completions.create(
        model="faulty", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert not isinstance(caught.value, openai.APIStatusError)  # a stream error, after a 200
    assert isinstance(caught.value.body, dict) and caught.value.body.get("code") == name

    # On the wire: a 200 stream whose last event is the one error event, and no [DONE].
    result = bedrock_stack.gateway.post("chat/completions", payload)
    assert result.status == 200
    assert result.headers["content-type"].startswith("text/event-stream")
    events = sse_events(result.body)
    assert "[DONE]" not in events
    errors = error_events(events)
    assert len(errors) == 1
    assert events[-1].startswith("{") and errors[0] == json.loads(events[-1])
    assert_error_body(errors[0], code=name)

    # Not failed over once bytes flowed; both requests accounted with the failure status.
    assert faulty_bedrock.count(HAIKU, "ConverseStream") - calls_before == 2
    _wait_requests_total(bedrock_stack, "faulty", "br-faulty", status, failures_before + 2)


def test_mid_stream_exception_keeps_the_content_sent_before_it(
    bedrock_stack: BedrockStack, faulty_bedrock: BedrockEmulator
) -> None:
    """What Bedrock streamed before the exception reaches the client, then the error event.

    How the bytes are split into reads varies from run to run, so the request is repeated:
    every run must deliver the whole prefix.
    """
    faulty_bedrock.set_faults(stream_exception_after_events=4)

    # boto3 against the same emulator: messageStart and 3 text deltas, then the exception.
    text = ""
    with pytest.raises(botocore.exceptions.EventStreamError):
        response = faulty_bedrock.boto().converse_stream(modelId=HAIKU, messages=CONVERSE_MESSAGES)
        for event in response["stream"]:
            text += event.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
    assert text

    delivered = []
    for _ in range(10):
        result = bedrock_stack.gateway.post(
            "chat/completions", {"model": "faulty", "messages": MESSAGES, "stream": True}
        )
        events = sse_events(result.body)
        assert len(error_events(events)) == 1
        chunks = [json.loads(e) for e in events if e.startswith("{") and '"choices"' in e]
        delivered.append(
            "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        )
    assert delivered == [text] * 10


@pytest.mark.parametrize(
    ("member", "name"),
    [
        ("throttlingException", "ThrottlingException"),
        ("serviceUnavailableException", "ServiceUnavailableException"),
        ("internalServerException", "InternalServerException"),
    ],
)
def test_exception_as_first_stream_event_falls_back(
    bedrock_stack: BedrockStack, faulty_bedrock: BedrockEmulator, member: str, name: str
) -> None:
    main = bedrock_stack.main
    faulty_bedrock.set_faults(stream_exception_after_events=0, stream_exception_type=member)
    faulty_before = faulty_bedrock.count(HAIKU, "ConverseStream")
    healthy_before = main.count(HAIKU_EU, "ConverseStream")

    raw = bedrock_stack.gateway.client().chat.completions.with_raw_response.create(
        model="flaky", messages=MESSAGES, stream=True
    )
    assert raw.headers["x-fulcrum-deployment"] == "br-healthy"
    assert raw.headers["x-fulcrum-fallback"] == f"br-faulty:{name}"
    content = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert faulty_bedrock.count(HAIKU, "ConverseStream") - faulty_before == 1
    assert main.count(HAIKU_EU, "ConverseStream") - healthy_before == 1
    reference = stream_reference(main.boto(), modelId=HAIKU_EU, messages=CONVERSE_MESSAGES)
    assert content
    assert content == reference["text"]


@pytest.mark.parametrize(
    ("member", "name", "status"),
    [
        ("validationException", "ValidationException", 400),
        ("modelStreamErrorException", "ModelStreamErrorException", 424),
    ],
)
def test_non_retryable_first_stream_event_is_returned_at_once(
    bedrock_stack: BedrockStack,
    faulty_bedrock: BedrockEmulator,
    member: str,
    name: str,
    status: int,
) -> None:
    main = bedrock_stack.main
    faulty_bedrock.set_faults(stream_exception_after_events=0, stream_exception_type=member)
    healthy_before = main.count(HAIKU_EU)
    result = bedrock_stack.gateway.post(
        "chat/completions", {"model": "flaky", "messages": MESSAGES, "stream": True}
    )
    assert result.status == status, result.body
    assert result.headers["content-type"].startswith("application/json")
    assert_error_body(result.body, code=name)
    assert result.headers["x-fulcrum-deployment"] == "br-faulty"
    assert main.count(HAIKU_EU) - healthy_before == 0


def test_first_stream_event_exception_without_fallback_is_a_json_error(
    bedrock_stack: BedrockStack, faulty_bedrock: BedrockEmulator
) -> None:
    faulty_bedrock.set_faults(
        stream_exception_after_events=0, stream_exception_type="throttlingException"
    )
    with pytest.raises(openai.RateLimitError) as caught:
        bedrock_stack.gateway.client().chat.completions.create(
            model="faulty", messages=MESSAGES, stream=True
        )
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert_error_body(
        sdk_error_body(caught.value), code="ThrottlingException", type_="rate_limit_error"
    )
