"""Bedrock exceptions → OpenAI-style errors and the router's retryable flag (issue 3's table)."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from fulcrum.providers.bedrock.errors import bedrock_error, error_from_response, exception_name
from tests.unit.providers.bedrock._service import service_model

_MODEL = service_model()
HTTP_STATUS = {
    shape.name: shape.metadata["error"]["httpStatusCode"] for shape in _MODEL.error_shapes
}
NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"

# Issue 3, "Errors": exception → (client status, retryable).
ISSUE_TABLE: dict[str, tuple[int, bool]] = {
    "ThrottlingException": (429, True),
    "ModelNotReadyException": (503, True),
    "ServiceUnavailableException": (503, True),
    "InternalServerException": (500, True),
    "ModelTimeoutException": (504, True),
    "ValidationException": (400, False),
    "AccessDeniedException": (403, False),
    "ResourceNotFoundException": (404, False),
    "ModelErrorException": (424, False),
}
TABLE = [pytest.param(name, *rule, id=name) for name, rule in ISSUE_TABLE.items()]


def aiohttp_headers(**headers: str) -> CIMultiDictProxy[str]:
    """Headers as aiohttp hands them to the provider: case-insensitive, lower-cased on the wire."""
    return CIMultiDictProxy(
        CIMultiDict({k.replace("_", "-").lower(): v for k, v in headers.items()})
    )


def test_the_issue_table_names_only_real_bedrock_exceptions() -> None:
    assert set(ISSUE_TABLE) <= set(HTTP_STATUS)


@pytest.mark.parametrize(("name", "status", "retryable"), TABLE)
def test_error_type_header(name: str, status: int, retryable: bool) -> None:
    body = orjson.dumps({"message": f"{name} happened"})
    headers = {"x-amzn-ErrorType": f"{name}:{NAMESPACE}", "Content-Type": "application/json"}
    error = error_from_response("bd-east", HTTP_STATUS[name], headers, body)
    assert (error.status, error.retryable) == (status, retryable)
    assert error.code == name
    assert f"{name} happened" in error.message
    assert "bd-east" in error.message
    assert error.payload()["error"]["code"] == name


@pytest.mark.parametrize(("name", "status", "retryable"), TABLE)
def test_error_type_header_in_lower_case(name: str, status: int, retryable: bool) -> None:
    headers = aiohttp_headers(x_amzn_errortype=f"{name}:{NAMESPACE}")
    error = error_from_response("bd", HTTP_STATUS[name], headers, b"{}")
    assert (error.status, error.retryable, error.code) == (status, retryable, name)


@pytest.mark.parametrize(("name", "status", "retryable"), TABLE)
def test_body_type_fallback(name: str, status: int, retryable: bool) -> None:
    body = orjson.dumps({"__type": f"com.amazon.bedrock#{name}", "Message": "from the body"})
    error = error_from_response("bd", HTTP_STATUS[name], {}, body)
    assert (error.status, error.retryable, error.code) == (status, retryable, name)
    assert "from the body" in error.message


@pytest.mark.parametrize(("name", "status", "retryable"), TABLE)
def test_plain_body_type_fallback(name: str, status: int, retryable: bool) -> None:
    error = error_from_response("bd", HTTP_STATUS[name], {}, orjson.dumps({"__type": name}))
    assert (error.status, error.retryable, error.code) == (status, retryable, name)


def test_header_wins_over_body_type() -> None:
    headers = {"x-amzn-ErrorType": f"ThrottlingException:{NAMESPACE}"}
    body = orjson.dumps({"__type": "ValidationException", "message": "slow down"})
    error = error_from_response("bd", 429, headers, body)
    assert (error.status, error.retryable, error.code) == (429, True, "ThrottlingException")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(f"ThrottlingException:{NAMESPACE}", "ThrottlingException", id="header"),
        pytest.param("ThrottlingException", "ThrottlingException", id="bare"),
        pytest.param("com.amazon.bedrock#ValidationException", "ValidationException", id="hash"),
        pytest.param("throttlingException", "ThrottlingException", id="lower-camel"),
        pytest.param("modelStreamErrorException", "ModelStreamErrorException", id="stream"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="none"),
    ],
)
def test_exception_name(raw: str | None, expected: str | None) -> None:
    assert exception_name(raw) == expected


STREAM_EXCEPTIONS = [
    name
    for name, shape in _MODEL.operation_model("ConverseStream")
    .output_shape.members["stream"]
    .members.items()
    if shape.metadata.get("exception")
]


@pytest.mark.parametrize("member", STREAM_EXCEPTIONS)
def test_stream_exception_names_map_like_their_http_twins(member: str) -> None:
    """``throttlingException`` inside a 200 stream is the same error as ThrottlingException."""
    twin = member[0].upper() + member[1:]
    streamed = bedrock_error("bd", exception_name(member), "mid-stream")
    http = error_from_response("bd", HTTP_STATUS[twin], {"x-amzn-ErrorType": twin}, b"{}")
    assert (streamed.status, streamed.retryable, streamed.code) == (
        http.status,
        http.retryable,
        twin,
    )
    if twin in ISSUE_TABLE:
        assert (streamed.status, streamed.retryable) == ISSUE_TABLE[twin]


def test_stream_names_cover_throttling_and_model_stream_error() -> None:
    assert {"throttlingException", "modelStreamErrorException"} <= set(STREAM_EXCEPTIONS)
    throttled = bedrock_error("bd", exception_name("throttlingException"), "slow")
    assert (throttled.status, throttled.retryable) == (429, True)
    model_stream = bedrock_error("bd", exception_name("modelStreamErrorException"), "boom")
    assert (model_stream.status, model_stream.retryable) == (424, False)


# (id, status, headers, body, client status, retryable)
UNKNOWN: list[tuple[str, int, Mapping[str, str], bytes, int, bool]] = [
    ("unknown-500", 500, {"x-amzn-ErrorType": "BrandNewException"}, b"{}", 502, True),
    ("unknown-503-empty", 503, {}, b"", 502, True),
    ("unknown-502-html", 502, {}, b"<html>Bad Gateway</html>", 502, True),
    ("unknown-504", 504, {}, b"not json", 502, True),
    ("unknown-429", 429, {}, b"", 429, True),
    ("unknown-400", 400, {"x-amzn-ErrorType": "ConflictException"}, b"{}", 400, False),
    ("unknown-418", 418, {}, b"", 418, False),
]


@pytest.mark.parametrize(
    ("status", "headers", "body", "client_status", "retryable"),
    [pytest.param(*row[1:], id=row[0]) for row in UNKNOWN],
)
def test_unknown_errors(
    status: int, headers: Mapping[str, str], body: bytes, client_status: int, retryable: bool
) -> None:
    error = error_from_response("bd", status, headers, body)
    assert (error.status, error.retryable) == (client_status, retryable)


def test_non_json_body_becomes_the_message() -> None:
    error = error_from_response("bd", 502, {}, b"<html>Bad Gateway</html>")
    assert "<html>Bad Gateway</html>" in error.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "7"}, 7.0, id="retry-after"),
        pytest.param({"Retry-After": "0.5"}, 0.5, id="fractional"),
        pytest.param(aiohttp_headers(retry_after="3"), 3.0, id="lower-case"),
        pytest.param({"x-amzn-retry-after": "2"}, 2.0, id="amzn-hint"),
        pytest.param({"Retry-After": "soon"}, None, id="unparseable-ignored"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_retry_after_is_honoured(headers: Mapping[str, str], expected: float | None) -> None:
    merged = CIMultiDict(headers)
    merged["x-amzn-ErrorType"] = f"ThrottlingException:{NAMESPACE}"
    error = error_from_response("bd", 429, CIMultiDictProxy(merged), b'{"message":"slow"}')
    assert (error.status, error.retryable) == (429, True)
    assert error.retry_after == expected
