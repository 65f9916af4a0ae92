"""Transport failures every provider reports the same way: one constructor per kind.

The client sees the deployment's name and what happened; details that would leak internal
addresses (OS errors, URLs) go to the log only.
"""

from __future__ import annotations

import logging

from fulcrum.api.errors import UpstreamError

log = logging.getLogger("fulcrum.providers")


def unreachable(name: str, exc: BaseException) -> UpstreamError:
    log.warning("deployment %s is unreachable: %s", name, str(exc) or type(exc).__name__)
    return UpstreamError(
        502,
        f"Upstream `{name}` is unreachable.",
        retryable=True,
        reason="unreachable",
        code="upstream_unreachable",
    )


def timed_out(name: str) -> UpstreamError:
    return UpstreamError(
        504,
        f"Upstream `{name}` timed out.",
        retryable=True,
        reason="timeout",
        code="upstream_timeout",
    )


def broken_stream(name: str, detail: str) -> UpstreamError:
    """After the first byte reached the client: too late to fail over."""
    return UpstreamError(
        502,
        f"Upstream `{name}` failed mid-stream: {detail}",
        retryable=False,
        reason="stream_broken",
        code="upstream_stream_error",
    )


def closed_before_first_event(name: str) -> UpstreamError:
    return UpstreamError(
        502,
        f"Upstream `{name}` closed the stream before sending an event.",
        retryable=True,
        reason="stream_closed",
        code="upstream_stream_closed",
    )


def invalid_response(name: str, detail: str) -> UpstreamError:
    log.warning("deployment %s answered with an invalid response: %s", name, detail)
    return UpstreamError(
        502,
        f"Upstream `{name}` returned an invalid response.",
        retryable=True,
        reason="invalid_response",
        code="upstream_invalid_response",
    )
