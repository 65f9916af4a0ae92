"""The timing model: per-model time to first token and output tokens per second.

* Converse: the answer is sent ``ttft + (output_tokens - 1) / tokens_per_s`` after the request
  arrived (never less than ``ttft``).
* ConverseStream: ``messageStart`` and the first ``contentBlockDelta`` leave at ``ttft``, the
  k-th delta at ``ttft + k / tokens_per_s``; structural events (block start/stop, messageStop,
  metadata) go out with the delta before them.
* InvokeModel (embeddings): ``ttft``.

``--speed F`` divides every delay by F; ``--no-latency`` removes them (nothing ever sleeps).
Delays are absolute deadlines from the request's arrival, so timer overhead does not add up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fulcrum.sim.bedrock.catalog import ModelSpec


@dataclass(frozen=True, slots=True)
class Timing:
    speed: float = 1.0
    zero: bool = False

    def ttft_s(self, model: ModelSpec) -> float:
        if self.zero:
            return 0.0
        return model.ttft_ms / 1000.0 / self.speed

    def token_interval_s(self, model: ModelSpec) -> float:
        if self.zero or model.output_tokens_per_s <= 0:
            return 0.0
        return 1.0 / model.output_tokens_per_s / self.speed

    def total_s(self, model: ModelSpec, output_tokens: int) -> float:
        return self.ttft_s(model) + max(0, output_tokens - 1) * self.token_interval_s(model)


async def sleep_until(deadline: float) -> None:
    """Sleep until the event loop's clock reaches ``deadline`` (no-op when already past)."""
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)
