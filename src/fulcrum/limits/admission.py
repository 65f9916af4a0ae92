"""The admission stage's interface: rate limits and budgets reserve before the call.

The pipeline skips the stage entirely when no tenant has limits, so it costs nothing on the
hot path then. Limiters (memory, Redis) implement this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fulcrum.auth.principal import Principal


@dataclass(frozen=True, slots=True)
class Demand:
    """What one request asks of its tenant's limits, estimated before the call."""

    model: str  # the public model alias (per-model limits)
    tokens: int  # estimated input tokens + max_tokens (or the configured default)
    cost_usd: float  # `tokens` priced at the dearest deployment the plan may use


class Reservation(Protocol):
    """Capacity held for one request, settled with its real usage afterwards."""

    @property
    def headers(self) -> Mapping[str, str]:
        """``x-ratelimit-*`` headers for the response (empty when no rate limit applies)."""
        ...

    async def settle(self, tokens: int, cost_usd: float) -> None:
        """Replace the estimate with the real tokens and cost; release the concurrency slot."""
        ...


class Admission(Protocol):
    """Admit a request (returning its reservation) or raise an ApiError (429, or 503)."""

    async def admit(self, principal: Principal, demand: Demand) -> Reservation: ...
