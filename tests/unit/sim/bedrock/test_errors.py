"""Error statuses agree with botocore's service model, the source of truth."""

from __future__ import annotations

import botocore.session
import orjson

from fulcrum.sim.bedrock.errors import (
    ERROR_STATUS,
    MODELED_ERRORS,
    STREAM_EXCEPTIONS,
    BedrockError,
    error_response,
    error_type_header,
    stream_exception_name,
)


def _model() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def test_statuses_match_the_service_model() -> None:
    model = _model()
    modelled = {
        name: model.shape_for(name).metadata["error"]["httpStatusCode"]
        for name in model.shape_names
        if model.shape_for(name).metadata.get("exception")
    }
    for name, status in modelled.items():
        if name in ERROR_STATUS:
            assert ERROR_STATUS[name] == status, name
    operation_errors = set()
    for op in ("Converse", "ConverseStream", "InvokeModel"):
        operation_errors |= {shape.name for shape in model.operation_model(op).error_shapes}
    assert operation_errors == MODELED_ERRORS


def test_stream_exception_members_match_the_union() -> None:
    union = _model().operation_model("ConverseStream").output_shape.members["stream"]
    exceptions = {name for name, shape in union.members.items() if shape.metadata.get("exception")}
    assert exceptions == set(STREAM_EXCEPTIONS)
    for member, name in STREAM_EXCEPTIONS.items():
        assert union.members[member].name == name


def test_response_is_framed_like_aws() -> None:
    exc = BedrockError("ThrottlingException", "Too many tokens, please wait before trying again.")
    response = error_response(exc, "req-1")
    assert response.status == 429
    assert response.headers["x-amzn-ErrorType"] == (
        "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )
    assert response.headers["x-amzn-RequestId"] == "req-1"
    assert response.body is not None
    assert orjson.loads(bytes(response.body)) == {"message": exc.message}  # type: ignore[arg-type]
    assert error_type_header("InvalidSignatureException").endswith("com.amazon.coral.service/")


def test_stream_exception_names_accept_both_spellings() -> None:
    assert stream_exception_name("ThrottlingException") == "throttlingException"
    assert stream_exception_name("modelStreamErrorException") == "modelStreamErrorException"
