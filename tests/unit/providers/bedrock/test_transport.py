"""Bedrock transport: model paths, SigV4 / bearer signing, and event-stream decoding."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote

import botocore.eventstream
import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fulcrum.api.errors import UpstreamError
from fulcrum.config import BedrockAuth
from fulcrum.providers.bedrock.transport import (
    EventStreamDecoder,
    RequestSigner,
    StreamEvent,
    model_path,
    signed_url,
)
from tests.unit.providers.bedrock._eventstream import encode_message, event, exception
from tests.unit.providers.bedrock._service import sdk_request

PT_ARN = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123def456"
PROFILE_ARN = (
    "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/"
    "eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
)


@pytest.mark.parametrize(
    ("model", "operation", "expected"),
    [
        pytest.param(
            "anthropic.claude-3-haiku-20240307-v1:0",
            "converse",
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
            id="foundation",
        ),
        pytest.param(
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "converse-stream",
            "/model/us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
            id="profile-id",
        ),
        pytest.param(
            PT_ARN,
            "converse",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
            "provisioned-model%2Fabc123def456/converse",
            id="pt-arn",
        ),
        pytest.param(
            PROFILE_ARN,
            "converse-stream",
            "/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile"
            "%2Feu.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
            id="profile-arn",
        ),
        pytest.param(
            "amazon.titan-embed-text-v2:0",
            "invoke",
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
            id="titan-invoke",
        ),
    ],
)
def test_model_path_percent_encodes_the_id(model: str, operation: str, expected: str) -> None:
    path = model_path(model, operation)
    assert path == expected
    _, segment, op = path.lstrip("/").split("/")
    assert (unquote(segment), op) == (model, operation)


@pytest.mark.parametrize(
    ("operation_name", "operation", "params"),
    [
        pytest.param("Converse", "converse", {"messages": []}, id="converse"),
        pytest.param("ConverseStream", "converse-stream", {"messages": []}, id="converse-stream"),
        pytest.param("InvokeModel", "invoke", {"body": b"{}"}, id="invoke"),
    ],
)
@pytest.mark.parametrize(
    "model",
    [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        PT_ARN,
        PROFILE_ARN,
    ],
)
def test_model_path_is_the_sdk_path(
    operation_name: str, operation: str, params: dict[str, object], model: str
) -> None:
    wire = sdk_request(operation_name, {"modelId": model, **params})
    assert model_path(model, operation) == wire["url_path"]


def test_signed_url_is_sent_without_requoting() -> None:
    endpoint = "https://bedrock-runtime.us-east-1.amazonaws.com"
    path = model_path(PT_ARN, "converse")
    url, target = signed_url(endpoint, path)
    assert url == endpoint + path
    assert target.raw_path == path  # %3A and %2F survive: the bytes signed are the bytes sent
    assert str(target) == url


ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"
URL = ENDPOINT + model_path(PT_ARN, "converse")
BODY = orjson.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
AUTH_PATTERN = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def recompute(
    signed: dict[str, str], credentials: Credentials, url: str = URL, body: bytes = BODY
) -> tuple[str, str]:
    """Botocore's SigV4 signature and signed-header list for the same request and date."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={k: v for k, v in signed.items() if k != "Authorization"},
    )
    request.context["timestamp"] = signed["X-Amz-Date"]
    auth = SigV4Auth(credentials, "bedrock", "us-east-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return signature, auth.signed_headers(auth.headers_to_sign(request))


async def test_sigv4_with_explicit_keys() -> None:
    signer = RequestSigner(
        BedrockAuth(access_key_id="AKID", secret_access_key="SECRET"), "us-east-1"
    )
    signed = await signer.headers(URL, BODY, dict(HEADERS))
    authorization = signed["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKID/")
    match = AUTH_PATTERN.match(authorization)
    assert match is not None, authorization
    amz_date = signed["X-Amz-Date"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date)
    assert match["date"] == amz_date[:8]
    assert (match["key"], match["region"], match["service"]) == ("AKID", "us-east-1", "bedrock")
    now = dt.datetime.now(dt.UTC)
    signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((now - signed_at).total_seconds()) < 300
    assert signed["Content-Type"] == "application/json"
    assert "X-Amz-Security-Token" not in signed
    assert set(match["signed"].split(";")) >= {"content-type", "host", "x-amz-date"}

    signature, signed_headers = recompute(signed, Credentials("AKID", "SECRET"))
    assert match["signature"] == signature
    assert match["signed"] == signed_headers
    # The check is not vacuous: another body, path or secret gives another signature.
    assert recompute(signed, Credentials("AKID", "SECRET"), body=BODY + b" ")[0] != signature
    other_url = ENDPOINT + model_path("anthropic.claude-v2", "converse")
    assert recompute(signed, Credentials("AKID", "SECRET"), url=other_url)[0] != signature
    assert recompute(signed, Credentials("AKID", "OTHER"))[0] != signature


async def test_sigv4_session_token_is_sent_and_signed() -> None:
    auth = BedrockAuth(access_key_id="ASIAKID", secret_access_key="SECRET", session_token="TOKEN")
    signed = await RequestSigner(auth, "us-east-1").headers(URL, BODY, dict(HEADERS))
    assert signed["X-Amz-Security-Token"] == "TOKEN"
    match = AUTH_PATTERN.match(signed["Authorization"])
    assert match is not None
    assert "x-amz-security-token" in match["signed"].split(";")
    assert match["signature"] == recompute(signed, Credentials("ASIAKID", "SECRET", "TOKEN"))[0]


async def test_sigv4_uses_the_deployment_region() -> None:
    auth = BedrockAuth(access_key_id="AKID", secret_access_key="SECRET")
    url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/m/converse"
    signed = await RequestSigner(auth, "eu-west-1").headers(url, BODY, dict(HEADERS))
    match = AUTH_PATTERN.match(signed["Authorization"])
    assert match is not None
    assert match["region"] == "eu-west-1"


async def test_api_key_is_a_bearer_token_without_sigv4() -> None:
    signer = RequestSigner(BedrockAuth(type="api_key", api_key="bedrock-key-123"), "us-east-1")
    signed = await signer.headers(URL, BODY, dict(HEADERS))
    assert signed == {**HEADERS, "Authorization": "Bearer bedrock-key-123"}


async def test_sigv4_credentials_from_the_standard_chain(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "ENVTOKEN")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    signed = await RequestSigner(BedrockAuth(), "us-east-1").headers(URL, BODY, dict(HEADERS))
    assert signed["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ENVKEY/")
    assert signed["X-Amz-Security-Token"] == "ENVTOKEN"
    match = AUTH_PATTERN.match(signed["Authorization"])
    assert match is not None
    credentials = Credentials("ENVKEY", "ENVSECRET", "ENVTOKEN")
    assert match["signature"] == recompute(signed, credentials)[0]


async def test_no_credentials_is_a_retryable_upstream_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(UpstreamError) as info:
        await RequestSigner(BedrockAuth(), "us-east-1").headers(URL, BODY, dict(HEADERS))
    assert (info.value.status, info.value.retryable) == (502, True)
    assert info.value.code == "upstream_credentials"


# ---------------------------------------------------------------- event stream

STREAM = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        event("messageStop", {"stopReason": "end_turn"}),
        exception("throttlingException", "Too many tokens, please wait."),
        encode_message(
            {
                ":message-type": "error",
                ":error-code": "InternalFailure",
                ":error-message": "it broke",
            },
            b"",
        ),
    ]
)
EXPECTED = [
    StreamEvent("event", "messageStart", {"role": "assistant", "p": "abcdefghij"}),
    StreamEvent(
        "event",
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"text": "Hi"}, "p": "abcdefghij"},
    ),
    StreamEvent("event", "messageStop", {"stopReason": "end_turn", "p": "abcdefghij"}),
    StreamEvent("exception", "throttlingException", {"message": "Too many tokens, please wait."}),
    StreamEvent("error", "InternalFailure", {"message": "it broke"}),
]


def byte_by_byte(data: bytes) -> Iterator[bytes]:
    for index in range(len(data)):
        yield data[index : index + 1]


def random_splits(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    start = 0
    while start < len(data):
        end = start + rng.randint(1, 40)
        yield data[start:end]
        start = end


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param(lambda: [STREAM], id="whole"),
        pytest.param(lambda: byte_by_byte(STREAM), id="byte-by-byte"),
        *[
            pytest.param(lambda s=seed: random_splits(STREAM, s), id=f"split-{seed}")
            for seed in range(5)
        ],
        pytest.param(lambda: [STREAM[:5], STREAM[5:13], STREAM[13:]], id="inside-prelude"),
    ],
)
def test_event_stream_decoder(pieces: Callable[[], Iterable[bytes]]) -> None:
    decoder = EventStreamDecoder()
    events: list[StreamEvent] = []
    for piece in pieces():
        events.extend(decoder.feed(piece))
    assert events == EXPECTED


def test_event_stream_decoder_waits_for_a_whole_message() -> None:
    decoder = EventStreamDecoder()
    first = event("messageStart", {"role": "assistant"})
    assert list(decoder.feed(first[:-1])) == []
    assert [e.name for e in decoder.feed(first[-1:])] == ["messageStart"]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda m: _flip(m, len(m) - 10), id="payload-byte"),
        pytest.param(lambda m: _flip(m, len(m) - 1), id="message-crc"),
        pytest.param(lambda m: _flip(m, 9), id="prelude-crc"),
        pytest.param(lambda m: _flip(m, 20), id="header-byte"),
    ],
)
def test_corrupted_crc_raises(corrupt: Callable[[bytes], bytes]) -> None:
    message = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    decoder = EventStreamDecoder()
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(decoder.feed(corrupt(message)))
