"""The interface between the limiter and where counters live (this process, or Redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from fulcrum.limits.checks import Ask, Settlement, Verdict


class LimitBackend(Protocol):
    """Evaluates every check of an Ask as one atomic unit and applies settlements.

    ``remote`` backends can fail (the limiter then falls back or refuses) and have their
    settlements batched; a local backend applies them at once.
    """

    @property
    def remote(self) -> bool: ...

    async def admit(self, ask: Ask) -> Verdict:
        """Admit (and reserve everything) or refuse (and change nothing)."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Replace estimates with real usage and release the concurrency leases."""
        ...

    async def aclose(self) -> None: ...
