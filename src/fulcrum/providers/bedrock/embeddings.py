"""OpenAI embeddings ⇄ Amazon Titan Text Embeddings V2 (InvokeModel), as pure functions.

Titan embeds one text per call, so an OpenAI request with several inputs becomes several
InvokeModel bodies; the results are reassembled in input order.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from fulcrum.api.errors import bad_request

TITAN_DIMENSIONS = frozenset({256, 512, 1024})


def titan_requests(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One InvokeModel body per input text."""
    raw = body["input"]
    texts = [raw] if isinstance(raw, str) else raw
    if not all(isinstance(text, str) and text for text in texts):
        raise bad_request(
            "Titan embeddings accept only non-empty strings (not token ids)", param="input"
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions not in TITAN_DIMENSIONS:
        raise bad_request("dimensions must be 256, 512 or 1024 for Titan V2", param="dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'", param="encoding_format")
    requests = []
    for text in texts:
        request: dict[str, Any] = {"inputText": text, "normalize": True}
        if dimensions is not None:
            request["dimensions"] = dimensions
        requests.append(request)
    return requests


def openai_embeddings(
    results: list[dict[str, Any]], *, model: str, encoding_format: str | None
) -> tuple[dict[str, Any], int]:
    """The OpenAI embeddings response for Titan results (in input order), and its token count."""
    data = []
    tokens = 0
    for index, result in enumerate(results):
        vector = result.get("embedding") or []
        tokens += int(result.get("inputTextTokenCount") or 0)
        embedding: Any = vector
        if encoding_format == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    response = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return response, tokens
