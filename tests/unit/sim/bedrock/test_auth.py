"""SigV4 verification against requests signed by botocore's own signer."""

from __future__ import annotations

import datetime as dt
from unittest import mock
from urllib.parse import quote

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from fulcrum.sim.bedrock.auth import BAD_SIGNATURE, INVALID_TOKEN, Authenticator
from fulcrum.sim.bedrock.errors import BedrockError

KEY, SECRET = "AKIDTEST", "secret"
HOST = "127.0.0.1:9999"
PATH = (
    "/model/"
    + quote("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc", safe="")
    + "/converse"
)
BODY = b'{"messages": []}'


def _signed(
    secret: str = SECRET,
    region: str = "us-east-1",
    service: str = "bedrock",
    body: bytes = BODY,
    when: dt.datetime | None = None,
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}{PATH}",
        data=body,
        headers={"Content-Type": "application/json", "X-Amz-Custom": "a  b"},
    )
    signer = SigV4Auth(Credentials(KEY, secret), service, region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(request)
    return request


def _check(auth: Authenticator, request: AWSRequest, body: bytes = BODY, **extra: str) -> None:
    headers: CIMultiDict[str] = CIMultiDict(request.headers.items())
    headers["Host"] = HOST
    headers.update(extra)
    auth.check("POST", PATH, headers, lambda name: headers.getall(name, []), body)


def _error(
    auth: Authenticator, request: AWSRequest, body: bytes = BODY, **extra: str
) -> BedrockError:
    with pytest.raises(BedrockError) as info:
        _check(auth, request, body, **extra)
    return info.value


def test_botocore_signed_request_is_accepted() -> None:
    auth = Authenticator(KEY, SECRET)
    _check(auth, _signed())
    _check(auth, _signed(region="eu-central-1"))  # any region unless one is required


def test_wrong_secret_is_an_invalid_signature_with_the_canonical_request() -> None:
    error = _error(Authenticator(KEY, SECRET), _signed(secret="other"))
    assert (error.name, error.status) == ("InvalidSignatureException", 403)
    assert error.message.startswith(BAD_SIGNATURE)
    # The path is canonicalised double-encoded, as botocore signs it for non-S3 services.
    assert "%253A" in error.message and "%252F" in error.message
    assert "String-to-Sign" in error.message


def test_tampered_body_fails() -> None:
    error = _error(Authenticator(KEY, SECRET), _signed(), body=b'{"messages": [1]}')
    assert error.name == "InvalidSignatureException"


def test_unknown_access_key_and_session_tokens() -> None:
    error = _error(Authenticator("OTHER", SECRET), _signed())
    assert (error.name, error.message) == ("UnrecognizedClientException", INVALID_TOKEN)
    error = _error(Authenticator(KEY, SECRET), _signed(), **{"X-Amz-Security-Token": "t"})
    assert error.name == "UnrecognizedClientException"


def test_scope_checks() -> None:
    error = _error(Authenticator(KEY, SECRET), _signed(service="s3"))
    assert "Credential should be scoped to correct service: 'bedrock'" in error.message
    error = _error(Authenticator(KEY, SECRET, region="us-east-1"), _signed(region="eu-west-1"))
    assert "Credential should be scoped to a valid region, not 'eu-west-1'" in error.message


def test_clock_skew() -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    error = _error(Authenticator(KEY, SECRET), _signed(when=old.replace(tzinfo=None)))
    assert error.message.startswith("Signature expired: ")
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    error = _error(Authenticator(KEY, SECRET), _signed(when=future.replace(tzinfo=None)))
    assert error.message.startswith("Signature not yet current: ")


def test_missing_and_malformed_authorization() -> None:
    auth = Authenticator(KEY, SECRET)
    request = _signed()
    del request.headers["Authorization"]
    error = _error(auth, request)
    assert (error.name, error.message) == (
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    )
    error = _error(auth, _signed(), Authorization="AWS4-HMAC-SHA256 Credential=x")
    assert error.name == "IncompleteSignatureException"
    assert "'SignedHeaders'" in error.message and "'Signature'" in error.message


def test_bearer_api_keys() -> None:
    auth = Authenticator(KEY, SECRET, api_keys=["bedrock-key-1"])
    request = _signed()
    _check(auth, request, Authorization="Bearer bedrock-key-1")
    error = _error(auth, request, Authorization="Bearer nope")
    assert error.name == "UnrecognizedClientException"
    error = _error(Authenticator(KEY, SECRET), request, Authorization="Bearer bedrock-key-1")
    assert error.name == "UnrecognizedClientException"
