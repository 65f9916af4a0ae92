"""One finished request as the ledger sees it, and the hour it is counted in.

The pipeline builds a ``UsageEvent`` at the end of every request and hands it to
``LedgerWriter.record``; nothing else about the request reaches the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Backend = Literal["bedrock", "self_hosted", "none"]
BACKENDS: tuple[Backend, ...] = ("bedrock", "self_hosted", "none")
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """What one request consumed and how it went.

    ``time`` is when the request ended (an aware datetime, a naive one taken as UTC, or epoch
    seconds). ``backend`` is the kind of the serving deployment: ``bedrock``, ``self_hosted``
    (its ``tags.self_hosted``), or ``none`` when no upstream served it (a prompt-cache hit, a
    request refused before routing). Tokens and ``cost_usd`` are what the upstream billed, so a
    cache hit has none; what the hit avoided goes into ``saved_usd``. ``cached_tokens`` is the
    part of ``input_tokens`` the upstream read from its own prompt cache. ``latency_seconds``
    is the whole request as the gateway saw it (None: not measured, left out of percentiles).
    """

    time: datetime | float
    tenant: str
    model: str
    deployment: str
    backend: Backend
    workload: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    error: bool = False
    cache_hit: bool = False
    saved_usd: float = 0.0
    latency_seconds: float | None = None


def backend_of(self_hosted: bool | None) -> Backend:
    """The ledger's backend for a deployment's ``tags.self_hosted`` (None: no deployment)."""
    if self_hosted is None:
        return "none"
    return "self_hosted" if self_hosted else "bedrock"


def hour_of(time: datetime | float) -> int:
    """Epoch seconds of the start of the UTC hour containing ``time``."""
    if isinstance(time, datetime):
        aware = time if time.tzinfo is not None else time.replace(tzinfo=UTC)
        seconds = aware.timestamp()
    else:
        seconds = float(time)
    return int(seconds // SECONDS_PER_HOUR) * SECONDS_PER_HOUR


def hour_start(epoch_hour: int) -> datetime:
    """The aware UTC datetime of an epoch hour from ``hour_of``."""
    return datetime.fromtimestamp(epoch_hour, UTC)


def floor_hour(time: datetime) -> datetime:
    """``time`` (naive: UTC) truncated to the start of its UTC hour."""
    return hour_start(hour_of(time))
