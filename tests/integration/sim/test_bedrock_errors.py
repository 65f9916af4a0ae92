"""Errors as boto3 sees them: typed exceptions, botocore's retries, auth, quotas, capacity."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.sim.bedrock_helpers import (
    ACCESS_KEY,
    API_KEY,
    HAIKU,
    PT_LARGE,
    PT_SMALL,
    PT_SMALL_TPM,
    SECRET_KEY,
    SONNET,
    TEST_CATALOG,
    TITAN,
    BedrockEmulator,
    http,
    start_bedrock,
    user,
    validate_output,
)


@pytest.fixture(scope="module")
def bedrock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockEmulator]:
    sim = start_bedrock(
        tmp_path_factory.mktemp("bedrock-errors"), "--no-latency", catalog=TEST_CATALOG
    )
    try:
        yield sim
    finally:
        sim.server.stop()


@pytest.fixture
def fresh(bedrock: BedrockEmulator) -> Iterator[BedrockEmulator]:
    bedrock.reset()
    try:
        yield bedrock
    finally:
        bedrock.reset()


# (error type, HTTP status, calls botocore makes with 3 attempts allowed, standard mode)
ERRORS = [
    ("ThrottlingException", 429, 3),  # throttling error code: retried
    ("ModelNotReadyException", 429, 3),  # modelled as retryable in the service model
    ("ServiceUnavailableException", 503, 3),  # transient status: retried
    ("InternalServerException", 500, 3),
    ("ModelTimeoutException", 408, 1),
    ("ValidationException", 400, 1),
    ("AccessDeniedException", 403, 1),
    ("ResourceNotFoundException", 404, 1),
    ("ModelErrorException", 424, 1),
    ("ServiceQuotaExceededException", 400, 1),
]


def test_max_attempts_counts_retries_not_calls(fresh: BedrockEmulator) -> None:
    """botocore's ``max_attempts`` key is the number of retries: 2 means 3 calls."""
    fresh.set_faults(error_rate=1.0, error_type="ServiceUnavailableException")
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=fresh.url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )
    with pytest.raises(client.exceptions.ServiceUnavailableException):
        client.converse(modelId=HAIKU, messages=[user("hi")])
    assert fresh.calls(HAIKU) == 3


@pytest.mark.parametrize(("error_type", "status", "calls"), ERRORS)
def test_injected_errors_surface_as_typed_exceptions_with_aws_retries(
    fresh: BedrockEmulator, error_type: str, status: int, calls: int
) -> None:
    fresh.set_faults(error_rate=1.0, error_type=error_type, error_message="injected")
    client = fresh.client(attempts=3)
    exception_class = getattr(client.exceptions, error_type)
    with pytest.raises(exception_class) as info:
        client.converse(modelId=HAIKU, messages=[user("hi")])
    error = info.value.response
    assert error["Error"]["Code"] == error_type
    assert error["Error"]["Message"] == "injected"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(f"{error_type}:")
    assert fresh.calls(HAIKU) == calls
    assert error["ResponseMetadata"]["RetryAttempts"] == calls - 1


def test_faults_can_target_one_model_and_have_a_rate(fresh: BedrockEmulator) -> None:
    fresh.set_faults(error_rate=1.0, error_type="ThrottlingException", models=[SONNET])
    client = fresh.client()
    validate_output(client, "Converse", client.converse(modelId=HAIKU, messages=[user("hi")]))
    with pytest.raises(client.exceptions.ThrottlingException):
        client.converse(modelId=f"us.{SONNET}", messages=[user("hi")])
    fresh.set_faults(error_rate=0.5, models=None, seed=3)
    outcomes = []
    for _ in range(20):
        try:
            client.converse(modelId=HAIKU, messages=[user("hi")])
            outcomes.append(True)
        except client.exceptions.ThrottlingException:
            outcomes.append(False)
    assert any(outcomes) and not all(outcomes)


def test_model_not_ready_for_a_while(fresh: BedrockEmulator) -> None:
    fresh.set_faults(model_not_ready_for_s=0.5)
    set_at = time.monotonic()
    client = fresh.client()
    with pytest.raises(client.exceptions.ModelNotReadyException):
        client.converse(modelId=HAIKU, messages=[user("hi")])
    deadline = set_at + 10
    while True:
        try:
            client.converse(modelId=HAIKU, messages=[user("hi")])
            break
        except client.exceptions.ModelNotReadyException:
            assert time.monotonic() < deadline, "still not ready after 10 s"
            time.sleep(0.05)
    assert time.monotonic() - set_at >= 0.5


def test_added_latency(fresh: BedrockEmulator) -> None:
    fresh.set_faults(added_latency_ms=300)
    started = time.monotonic()
    fresh.client().converse(modelId=HAIKU, messages=[user("hi")])
    assert time.monotonic() - started >= 0.3


def test_admin_api(bedrock: BedrockEmulator) -> None:
    current = bedrock.set_faults(error_rate=0.25, seed=3, error_type="ThrottlingException")
    assert (current["error_rate"], current["seed"], current["error_type"]) == (
        0.25,
        3,
        "ThrottlingException",
    )
    assert bedrock.admin("GET", "/admin/faults") == current
    on_main = http("GET", f"{bedrock.url}/admin/faults")
    assert on_main.status == 200 and on_main.json() == current
    bad = http("POST", f"{bedrock.admin_url}/admin/faults", b'{"error_type": "Nope"}')
    assert bad.status == 400 and "error_type" in bad.json()["message"]
    reset = bedrock.admin("DELETE", "/admin/faults")
    assert reset["error_rate"] == 0.0
    catalog = bedrock.admin("GET", "/admin/catalog")
    assert PT_SMALL in {p["arn"] for p in catalog["provisioned"]}
    assert f"global.{HAIKU}" in catalog["inference_profiles"]


# ----------------------------------------------------------------------------- auth


def test_wrong_secret_is_invalid_signature(fresh: BedrockEmulator) -> None:
    client = fresh.client(secret_key="not-the-secret", attempts=3)
    with pytest.raises(ClientError) as info:
        client.converse(modelId=HAIKU, messages=[user("hi")])
    error = info.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )
    assert fresh.calls(HAIKU) == 1  # not retried


def test_unknown_access_key_and_unsigned_requests(fresh: BedrockEmulator) -> None:
    with pytest.raises(ClientError) as info:
        fresh.client(access_key="AKIDUNKNOWN").converse(modelId=HAIKU, messages=[user("hi")])
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["Error"]["Message"] == (
        "The security token included in the request is invalid."
    )
    with pytest.raises(ClientError) as info:
        fresh.client(signature_version=UNSIGNED).converse(modelId=HAIKU, messages=[user("hi")])
    assert info.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.fixture(scope="module")
def tls_bedrock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BedrockEmulator]:
    sim = start_bedrock(
        tmp_path_factory.mktemp("bedrock-tls"), "--no-latency", "--api-key", API_KEY, tls=True
    )
    try:
        yield sim
    finally:
        sim.server.stop()


def _bearer_client(sim: BedrockEmulator) -> BaseClient:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=sim.url,
        region_name="us-east-1",
        verify=sim.verify,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def test_bearer_api_key_over_https(
    tls_bedrock: BedrockEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # boto3 sends a Bedrock API key from AWS_BEARER_TOKEN_BEDROCK, and only over HTTPS.
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    client = _bearer_client(tls_bedrock)
    response = client.converse(modelId=HAIKU, messages=[user("hi")])
    validate_output(client, "Converse", response)
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "not-the-key")
    with pytest.raises(ClientError) as info:
        _bearer_client(tls_bedrock).converse(modelId=HAIKU, messages=[user("hi")])
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK")
    signed = tls_bedrock.client()  # SigV4 works over HTTPS too
    validate_output(signed, "Converse", signed.converse(modelId=HAIKU, messages=[user("hi")]))


# ------------------------------------------------------------------ quotas and capacity


def test_provisioned_throughput_throttles_beyond_its_capacity(fresh: BedrockEmulator) -> None:
    client = fresh.client()
    first = client.converse(
        modelId=PT_SMALL, messages=[user("hello")], inferenceConfig={"maxTokens": 100}
    )
    usage = first["usage"]
    used = usage["inputTokens"] + usage["outputTokens"]  # what the first request settled to
    estimate = usage["inputTokens"] + 100  # what each request reserves at admission
    admitted = 1
    with pytest.raises(client.exceptions.ThrottlingException) as info:
        for _ in range(50):
            client.converse(
                modelId=PT_SMALL, messages=[user("hello")], inferenceConfig={"maxTokens": 100}
            )
            admitted += 1
    assert str(info.value).endswith("Too many tokens, please wait before trying again.")
    # identical requests settle identically: throttled at the first n with (n-1)*used+estimate > tpm
    expected = next(n for n in range(1, 100) if n * used + estimate > PT_SMALL_TPM)
    assert admitted == expected
    quota = fresh.stats()["quotas"][PT_SMALL]
    assert quota == {
        "requests": admitted,
        "tokens": admitted * used,
        "rpm": None,
        "tpm": PT_SMALL_TPM,
    }
    # the on-demand model behind it is unaffected
    validate_output(client, "Converse", client.converse(modelId=HAIKU, messages=[user("hello")]))


def test_on_demand_requests_per_minute(fresh: BedrockEmulator) -> None:
    client = fresh.client()
    for _ in range(2):
        client.converse(modelId=SONNET, messages=[user("hi")])
    with pytest.raises(client.exceptions.ThrottlingException, match="Too many requests"):
        client.converse(modelId=SONNET, messages=[user("hi")])
    # the cross-region profile has its own counter
    validate_output(
        client, "Converse", client.converse(modelId=f"us.{SONNET}", messages=[user("hi")])
    )


# ------------------------------------------------------------------------- raw HTTP


def test_raw_error_framing_and_routing(fresh: BedrockEmulator) -> None:
    body = json.dumps({"messages": [user("hi")]}).encode()
    headers = {"Content-Type": "application/json"}
    reply = fresh.signed("POST", "/model/anthropic.unknown-v1%3A0/converse", body, headers)
    assert reply.status == 400
    assert reply.headers["x-amzn-ErrorType"] == (
        "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )
    assert reply.headers["x-amzn-RequestId"]
    assert reply.json() == {"message": "The provided model identifier is invalid."}
    # An encoded "/" stays inside the model id; a raw "/" splits the route.
    encoded = PT_LARGE.replace(":", "%3A").replace("/", "%2F")
    assert fresh.signed("POST", f"/model/{encoded}/converse", body, headers).status == 200
    unknown = fresh.signed("POST", f"/model/{PT_LARGE.replace(':', '%3A')}/converse", body, headers)
    assert unknown.status == 404
    assert unknown.headers["x-amzn-ErrorType"].startswith("UnknownOperationException:")
    assert fresh.signed("GET", f"/model/{HAIKU}/converse").status == 404
    assert fresh.signed("POST", "/model/x/invoke-everything", body, headers).status == 404
    unsigned = http("POST", f"{fresh.url}/model/{HAIKU}/converse", body, headers)
    assert unsigned.status == 403
    invoke = fresh.signed(
        "POST", f"/model/{TITAN}/invoke", b'{"inputText": "hi"}', {"Content-Type": "text/plain"}
    )
    assert invoke.status == 400 and "content type" in invoke.json()["message"]
    stats = fresh.stats()
    assert stats["requests"][PT_LARGE]["Converse"] == 1
    assert stats["errors"]["ValidationException"] >= 2
