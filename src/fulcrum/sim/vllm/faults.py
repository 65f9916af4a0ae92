"""Run-time fault injection: what can go wrong with an upstream, switchable over HTTP.

The admin API sends JSON; :func:`apply_update` validates it into a new immutable
:class:`Faults` (a bad field rejects the whole update, so the active set is never half-applied).
Random errors come from a seeded RNG, re-seeded on every update, so a test can rely on the exact
sequence of failures; ``error_rate`` 1.0 and 0.0 never consult the RNG at all.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace
from typing import Any

from fulcrum.sim.fault_fields import FaultError, fields_of, flag, integer, number


@dataclass(frozen=True, slots=True)
class Faults:
    """The active fault set. The defaults mean "healthy"."""

    error_rate: float = 0.0
    """Fraction (0..1) of inference requests answered with ``error_status`` instead."""
    error_status: int = 500
    error_message: str = "Injected fault"
    added_latency_ms: float = 0.0
    """Extra delay before every inference request is handled."""
    refuse_connections: bool = False
    """Close the main listening socket (and its open connections): clients get ECONNREFUSED."""
    cut_stream_after_chunks: int | None = None
    """Close the connection after this many SSE events, without ``data: [DONE]``."""
    not_ready: bool = False
    """Act like a cold start: ``/health`` and inference endpoints answer 503."""
    seed: int = 0
    """Seed of the RNG that decides which requests fail when 0 < error_rate < 1."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def affects_requests(self) -> bool:
        """True when an inference request must look at the faults at all (fast-path check)."""
        return (
            self.error_rate > 0
            or self.added_latency_ms > 0
            or self.not_ready
            or self.cut_stream_after_chunks is not None
        )


def apply_update(current: Faults, update: Any) -> Faults:
    """``current`` with the fields of ``update`` (a JSON object) validated and applied."""
    update = fields_of(update, Faults.__dataclass_fields__)
    changes: dict[str, Any] = {}
    for key, value in update.items():
        if key == "error_rate":
            changes[key] = number(key, value, 0.0, 1.0)
        elif key == "error_status":
            changes[key] = integer(key, value, 400, 599)
        elif key == "error_message":
            if not isinstance(value, str):
                raise FaultError("error_message must be a string")
            changes[key] = value
        elif key == "added_latency_ms":
            changes[key] = number(key, value, 0.0, 600_000.0)
        elif key == "cut_stream_after_chunks":
            changes[key] = None if value is None else integer(key, value, 0, None)
        elif key == "seed":
            changes[key] = integer(key, value, 0, None)
        else:  # refuse_connections, not_ready
            changes[key] = flag(key, value)
    return replace(current, **changes)


class FaultState:
    """The active :class:`Faults` plus the RNG that draws injected errors."""

    def __init__(self) -> None:
        self.faults = Faults()
        self._rng = random.Random(0)

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)

    def draw_error(self) -> bool:
        """Whether the next inference request fails."""
        rate = self.faults.error_rate
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._rng.random() < rate
