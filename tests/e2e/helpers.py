"""Helpers shared by the end-to-end tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Gateway, MetricSample, metric_value, poll_until

#: Parts of a response that legitimately differ between two identical requests.
VOLATILE_KEYS = frozenset({"id", "created", "system_fingerprint"})


def stable(value: Any) -> Any:
    """``value`` (an SDK model or plain data) as plain data without its volatile keys."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_unset=True)
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


@dataclass
class StreamSummary:
    """What a chat or completion stream delivered, folded per choice index."""

    content: dict[int, str] = field(default_factory=dict)
    finish_reasons: dict[int, str | None] = field(default_factory=dict)
    tool_calls: dict[int, dict[int, dict[str, str]]] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0
    models: set[str] = field(default_factory=set)


def summarize_stream(chunks: Iterable[Any]) -> StreamSummary:
    """Fold SDK chunks (chat or legacy completion) into a ``StreamSummary``."""
    summary = StreamSummary()
    for chunk in chunks:
        summary.chunks += 1
        summary.models.add(chunk.model)
        if chunk.usage is not None:
            summary.usage.append(chunk.usage.model_dump(exclude_none=True))
        for choice in chunk.choices:
            text = getattr(choice, "text", None)
            delta = getattr(choice, "delta", None)
            if delta is not None:
                text = delta.content
                for call in delta.tool_calls or []:
                    slot = summary.tool_calls.setdefault(choice.index, {}).setdefault(
                        call.index, {"name": "", "arguments": ""}
                    )
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
            summary.content[choice.index] = summary.content.get(choice.index, "") + (text or "")
            if choice.finish_reason is not None:
                summary.finish_reasons[choice.index] = choice.finish_reason
            else:
                summary.finish_reasons.setdefault(choice.index, None)
    return summary


def usage_numbers(usage: Any) -> tuple[int, int, int]:
    """(prompt, completion, total) tokens of an SDK usage object or a plain dict."""
    if hasattr(usage, "model_dump"):
        usage = usage.model_dump()
    return usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]


def assert_error_body(
    body: Any,
    *,
    code: str | None,
    type_: str | None = None,
    param: Any = ...,
) -> dict[str, Any]:
    """Assert OpenAI's error shape ``{"error": {message, type, param, code}}``; return it."""
    if isinstance(body, bytes | str):
        body = json.loads(body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert "Traceback" not in error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if type_ is not None:
        assert error["type"] == type_, error
    if param is not ...:
        assert error["param"] == param, error
    return dict(error)


def sdk_error_body(exc: Any) -> dict[str, Any]:
    """The ``{"error": ...}`` document behind an ``openai.APIStatusError``."""
    return dict(exc.response.json())


def token_counts(samples: list[MetricSample], deployment: str) -> tuple[float, float]:
    """``fulcrum_tokens_total`` for ``deployment``: (input, output), summed over models."""
    return (
        metric_value(samples, "fulcrum_tokens_total", deployment=deployment, kind="input"),
        metric_value(samples, "fulcrum_tokens_total", deployment=deployment, kind="output"),
    )


def wait_token_counts(
    gateway: Gateway, deployment: str, expected: tuple[float, float], timeout: float = 5.0
) -> tuple[float, float]:
    """Poll /metrics until the token counters of ``deployment`` reach ``expected``.

    Accounting may finish a moment after the client read the last byte; once the counters
    reach the expected values the caller asserts exact equality (no over-counting).
    """

    def reached() -> tuple[float, float] | None:
        counts = token_counts(gateway.metrics(), deployment)
        return counts if counts[0] >= expected[0] and counts[1] >= expected[1] else None

    try:
        return poll_until(reached, timeout, what=f"tokens of {deployment} reach {expected}")
    except AssertionError:
        return token_counts(gateway.metrics(), deployment)


def sse_events(raw: bytes) -> list[str]:
    """The ``data:`` payloads of a server-sent-event body, in order."""
    events: list[str] = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [
            line[5:].lstrip().decode() for line in block.split(b"\n") if line.startswith(b"data:")
        ]
        if data:
            events.append("\n".join(data))
    return events
