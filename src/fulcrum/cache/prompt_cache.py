"""The prompt cache stage's interface (exact-match completions, keyed per tenant).

No cache ships with this issue; the pipeline skips the stage when none is configured.
"""

from __future__ import annotations

from typing import Protocol

from fulcrum.auth.principal import Principal
from fulcrum.providers.base import Completion
from fulcrum.schema.openai import InferenceRequest


class PromptCache(Protocol):
    """Look up and store complete answers."""

    async def lookup(
        self, principal: Principal, request: InferenceRequest
    ) -> Completion | None: ...

    async def store(
        self, principal: Principal, request: InferenceRequest, completion: Completion
    ) -> None: ...
