"""Upstream error responses → what the client sees, and whether another deployment may help."""

from __future__ import annotations

import pytest

from fulcrum.providers.openai_compat import error_from_upstream

VLLM_NEW = b'{"error":{"message":"too long","type":"BadRequestError","param":null,"code":400}}'
VLLM_OLD = (
    b'{"object":"error","message":"too long","type":"BadRequestError","param":null,"code":400}'
)


@pytest.mark.parametrize(
    ("status", "body", "client_status", "retryable", "message"),
    [
        (400, VLLM_NEW, 400, False, "too long"),
        (400, VLLM_OLD, 400, False, "too long"),
        (404, b'{"error":{"message":"no such model"}}', 404, False, "no such model"),
        (401, b"", 401, False, "Upstream `up` answered HTTP 401."),
        (429, b'{"error":{"message":"slow down"}}', 429, True, "slow down"),
        (500, b"Internal Server Error", 502, True, "Internal Server Error"),
        (503, b'{"error":{"message":"not ready"}}', 503, True, "not ready"),
        (504, b"", 504, True, "Upstream `up` answered HTTP 504."),
    ],
)
def test_error_mapping(
    status: int, body: bytes, client_status: int, retryable: bool, message: str
) -> None:
    error = error_from_upstream("up", status, body, {})
    assert error.status == client_status
    assert error.retryable is retryable
    assert error.message == message
    assert error.payload()["error"]["message"] == message


def test_retry_after_is_kept() -> None:
    error = error_from_upstream("up", 429, b"", {"Retry-After": "3"})
    assert error.retry_after == 3.0


def test_upstream_type_and_code_survive() -> None:
    error = error_from_upstream("up", 400, VLLM_NEW, {})
    assert error.payload()["error"]["type"] == "BadRequestError"
    assert error.payload()["error"]["code"] == 400
