"""Run-time fault injection for the Bedrock emulator, switchable over HTTP.

The admin API sends JSON; :func:`apply_update` validates it into a new immutable
:class:`Faults` (a bad field rejects the whole update, so the active set is never half-applied).
Which requests fail is drawn from a seeded RNG, re-seeded on every update; ``error_rate`` 1.0
and 0.0 never consult it. Faults apply to the inference operations (Converse,
ConverseStream, InvokeModel) after authentication, optionally only for some model ids.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from fulcrum.sim.bedrock.errors import MODELED_ERRORS, stream_exception_name
from fulcrum.sim.fault_fields import FaultError, fields_of, integer, number, text


@dataclass(frozen=True, slots=True)
class Faults:
    """The active fault set. The defaults mean "healthy"."""

    error_rate: float = 0.0
    """Fraction (0..1) of requests answered with ``error_type`` instead."""
    error_type: str = "InternalServerException"
    """Any error of the operations (ThrottlingException, ModelNotReadyException, ...)."""
    error_message: str | None = None
    """Message of injected errors (None: the type's usual message)."""
    added_latency_ms: float = 0.0
    """Extra delay before each request is handled."""
    model_not_ready_for_s: float | None = None
    """For this many seconds from the update, answer ModelNotReadyException."""
    stream_exception_after_events: int | None = None
    """ConverseStream sends this many events, then an exception message, then ends."""
    stream_exception_type: str = "modelStreamErrorException"
    """``:exception-type`` of that message (a ConverseStreamOutput exception member)."""
    stream_exception_message: str | None = None
    models: tuple[str, ...] | None = None
    """Only requests whose model id (as sent, or its base model) is listed are affected."""
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models) if self.models is not None else None
        return data

    @property
    def affects_requests(self) -> bool:
        """True when an inference request must look at the faults at all (fast-path check)."""
        return (
            self.error_rate > 0
            or self.added_latency_ms > 0
            or self.model_not_ready_for_s is not None
            or self.stream_exception_after_events is not None
        )


def apply_update(current: Faults, update: Any) -> Faults:
    """``current`` with the fields of ``update`` (a JSON object) validated and applied."""
    update = fields_of(update, Faults.__dataclass_fields__)
    changes: dict[str, Any] = {}
    for key, value in update.items():
        if key == "error_rate":
            changes[key] = number(key, value, 0.0, 1.0)
        elif key == "error_type":
            if value not in MODELED_ERRORS:
                raise FaultError(f"error_type must be one of {', '.join(sorted(MODELED_ERRORS))}")
            changes[key] = value
        elif key in ("error_message", "stream_exception_message"):
            changes[key] = text(key, value)
        elif key == "added_latency_ms":
            changes[key] = number(key, value, 0.0, 600_000.0)
        elif key == "model_not_ready_for_s":
            changes[key] = None if value is None else number(key, value, 0.0, 86_400.0)
        elif key == "stream_exception_after_events":
            changes[key] = None if value is None else integer(key, value, 0)
        elif key == "stream_exception_type":
            if not isinstance(value, str):
                raise FaultError("stream_exception_type must be a string")
            try:
                changes[key] = stream_exception_name(value)
            except ValueError as exc:
                raise FaultError(f"stream_exception_type: {exc}") from None
        elif key == "models":
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(m, str) and m for m in value)
            ):
                raise FaultError("models must be a list of model ids or null")
            changes[key] = None if value is None else tuple(value)
        else:  # seed
            changes[key] = integer(key, value, 0)
    return replace(current, **changes)


class FaultState:
    """The active :class:`Faults`, the RNG that draws injected errors, the not-ready deadline."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.faults = Faults()
        self._rng = random.Random(0)
        self._not_ready_until = 0.0

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        span = faults.model_not_ready_for_s
        self._not_ready_until = self._clock() + span if span is not None else 0.0

    def applies_to(self, invoked_id: str, base_id: str) -> bool:
        models = self.faults.models
        return models is None or invoked_id in models or base_id in models

    def not_ready(self) -> bool:
        return self._not_ready_until > 0.0 and self._clock() < self._not_ready_until

    def not_ready_remaining_s(self) -> float:
        return max(0.0, self._not_ready_until - self._clock()) if self._not_ready_until else 0.0

    def draw_error(self) -> bool:
        """Whether the next affected request fails with ``error_type``."""
        rate = self.faults.error_rate
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._rng.random() < rate
