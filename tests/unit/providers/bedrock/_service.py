"""botocore's own description of Bedrock Runtime: the reference these tests check against."""

from __future__ import annotations

import functools
from typing import Any

import botocore.serialize
import botocore.session
from botocore.model import OperationModel, ServiceModel


@functools.cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("bedrock-runtime")


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


def sdk_request(operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """What the AWS SDK would put on the wire for these (Python-side) parameters."""
    serializer = botocore.serialize.create_serializer(
        service_model().metadata["protocol"], include_validation=True
    )
    return serializer.serialize_to_request(params, operation(operation_name))
