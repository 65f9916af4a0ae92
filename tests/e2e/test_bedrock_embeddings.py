"""Embeddings served by Amazon Titan Text Embeddings V2 on Bedrock (InvokeModel).

The reference is the emulator asked directly with boto3's ``invoke_model`` for the Titan body
the gateway sends (one call per input text, ``normalize: true``).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import openai
import pytest

from tests.e2e.bedrock_fixtures import TITAN, BedrockStack
from tests.e2e.helpers import assert_error_body, sdk_error_body

TEXTS = ["The Amazon flows into the Atlantic.", "Lake Titicaca lies between Peru and Bolivia."]


def _titan(stack: BedrockStack, text: str, dimensions: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text, "normalize": True}
    if dimensions is not None:
        body["dimensions"] = dimensions
    response = stack.main.boto().invoke_model(
        modelId=TITAN,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    result: dict[str, Any] = json.loads(response["body"].read())
    return result


@pytest.mark.parametrize("dimensions", [None, 256, 512])
def test_embeddings_dimensions_vectors_and_usage(
    bedrock_stack: BedrockStack, dimensions: int | None
) -> None:
    main = bedrock_stack.main
    before = main.count(TITAN, "InvokeModel")
    extra: dict[str, Any] = {} if dimensions is None else {"dimensions": dimensions}
    raw = bedrock_stack.gateway.client().embeddings.with_raw_response.create(
        model="titan", input=TEXTS, encoding_format="float", **extra
    )
    assert main.count(TITAN, "InvokeModel") - before == len(TEXTS)  # Titan: one text per call
    assert raw.headers["x-fulcrum-deployment"] == "br-titan"
    response = raw.parse()
    references = [_titan(bedrock_stack, text, dimensions) for text in TEXTS]

    assert response.object == "list"
    assert response.model == "titan"
    assert [item.index for item in response.data] == [0, 1]
    for item, reference in zip(response.data, references, strict=True):
        assert item.object == "embedding"
        assert len(item.embedding) == (dimensions or 1024)
        assert item.embedding == pytest.approx(reference["embedding"], abs=1e-6)
    tokens = sum(reference["inputTextTokenCount"] for reference in references)
    assert tokens > 0
    assert response.usage.prompt_tokens == tokens
    assert response.usage.total_tokens == tokens


def test_embeddings_base64_encoding(bedrock_stack: BedrockStack) -> None:
    client = bedrock_stack.gateway.client()
    floats = client.embeddings.create(
        model="titan", input=TEXTS[0], dimensions=256, encoding_format="float"
    )
    # Raw HTTP: the SDK would decode base64 itself; here the wire format is checked.
    result = bedrock_stack.gateway.post(
        "embeddings",
        {"model": "titan", "input": TEXTS[0], "dimensions": 256, "encoding_format": "base64"},
    )
    assert result.status == 200, result.body
    document = result.json()
    encoded = document["data"][0]["embedding"]
    assert isinstance(encoded, str)
    raw = base64.b64decode(encoded)
    assert len(raw) == 256 * 4  # little-endian float32, as OpenAI encodes it
    decoded = struct.unpack("<256f", raw)
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert document["usage"]["prompt_tokens"] == floats.usage.prompt_tokens

    # ... and the SDK's own base64 handling (its default) yields the same vector.
    sdk_default = client.embeddings.create(model="titan", input=TEXTS[0], dimensions=256)
    assert sdk_default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


def test_titan_rejects_unsupported_dimensions(bedrock_stack: BedrockStack) -> None:
    before = bedrock_stack.main.count(TITAN)
    with pytest.raises(openai.BadRequestError) as caught:
        bedrock_stack.gateway.client().embeddings.create(
            model="titan", input="hello", dimensions=300
        )
    assert_error_body(sdk_error_body(caught.value), code=None, param="dimensions")
    assert bedrock_stack.main.count(TITAN) == before
