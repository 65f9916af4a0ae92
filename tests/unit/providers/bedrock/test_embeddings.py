"""OpenAI embeddings ⇄ Amazon Titan Text Embeddings V2 (InvokeModel bodies)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.providers.bedrock.embeddings import openai_embeddings, titan_requests


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"model": "titan", "input": "hello"},
            [{"inputText": "hello", "normalize": True}],
            id="single-string",
        ),
        pytest.param(
            {"input": ["a", "b", "c"]},
            [
                {"inputText": "a", "normalize": True},
                {"inputText": "b", "normalize": True},
                {"inputText": "c", "normalize": True},
            ],
            id="several-in-order",
        ),
        pytest.param(
            {"input": ["a"], "dimensions": 256},
            [{"inputText": "a", "normalize": True, "dimensions": 256}],
            id="dimensions-256",
        ),
        pytest.param(
            {"input": "a", "dimensions": 512},
            [{"inputText": "a", "normalize": True, "dimensions": 512}],
            id="dimensions-512",
        ),
        pytest.param(
            {"input": "a", "dimensions": 1024, "encoding_format": "base64"},
            [{"inputText": "a", "normalize": True, "dimensions": 1024}],
            id="dimensions-1024-base64",
        ),
        pytest.param(
            {"input": "a", "encoding_format": "float"},
            [{"inputText": "a", "normalize": True}],
            id="float",
        ),
    ],
)
def test_titan_requests(body: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert titan_requests(body) == expected


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"input": "a", "dimensions": 768}, "dimensions", id="dimensions-768"),
        pytest.param({"input": "a", "dimensions": 1536}, "dimensions", id="dimensions-1536"),
        pytest.param({"input": "a", "dimensions": 0}, "dimensions", id="dimensions-0"),
        pytest.param({"input": [101, 2023, 102]}, "input", id="token-ids"),
        pytest.param({"input": [[101, 2023], [102]]}, "input", id="token-id-arrays"),
        pytest.param({"input": ["ok", 5]}, "input", id="mixed"),
        pytest.param({"input": ""}, "input", id="empty-string"),
        pytest.param({"input": "a", "encoding_format": "int8"}, "encoding_format", id="int8"),
    ],
)
def test_rejected(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as info:
        titan_requests(body)
    assert info.value.status == 400
    assert info.value.param == param


RESULTS = [
    {"embedding": [0.5, -0.25, 1.0, 0.125], "inputTextTokenCount": 3},
    {"embedding": [-1.5, 0.0, 2.0, 3.25], "inputTextTokenCount": 5},
]


def test_float_response_in_input_order_with_summed_usage() -> None:
    response, tokens = openai_embeddings(RESULTS, model="titan-v2", encoding_format=None)
    assert response == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 1.0, 0.125]},
            {"object": "embedding", "index": 1, "embedding": [-1.5, 0.0, 2.0, 3.25]},
        ],
        "model": "titan-v2",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert tokens == 8


def test_base64_is_little_endian_float32() -> None:
    response, _ = openai_embeddings(RESULTS, model="titan-v2", encoding_format="base64")
    for item, result in zip(response["data"], RESULTS, strict=True):
        raw = base64.b64decode(item["embedding"])
        vector = result["embedding"]
        assert len(raw) == 4 * len(vector)
        assert list(struct.unpack(f"<{len(vector)}f", raw)) == vector
    # The byte order is fixed, not the machine's: 0.5 is 00 00 00 3f in little endian.
    first = base64.b64decode(response["data"][0]["embedding"])
    assert first[:4] == bytes.fromhex("0000003f")


def test_base64_rounds_to_float32() -> None:
    vector = [0.1, -0.333333333333]
    response, _ = openai_embeddings(
        [{"embedding": vector, "inputTextTokenCount": 1}], model="m", encoding_format="base64"
    )
    decoded = struct.unpack("<2f", base64.b64decode(response["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, rel=1e-6)
