"""The admission stage's interface: rate limits and budgets reserve before the call.

This issue ships no limiter; the pipeline skips the stage entirely when none is configured,
so it costs nothing on the hot path. Limiters (memory, Redis) implement this protocol.
"""

from __future__ import annotations

from typing import Protocol

from fulcrum.auth.principal import Principal
from fulcrum.providers.base import Usage
from fulcrum.schema.openai import InferenceRequest


class Reservation(Protocol):
    """Capacity held for one request, settled with its real usage afterwards."""

    async def settle(self, usage: Usage | None) -> None: ...


class Admission(Protocol):
    """Admit a request (returning its reservation) or raise a 429 ApiError."""

    async def admit(self, principal: Principal, request: InferenceRequest) -> Reservation: ...
