"""The provider interface: what the pipeline needs from any upstream, and nothing more.

A provider turns a validated OpenAI request into an upstream call and gives back bytes in the
OpenAI wire format plus the token usage it read. Streams are opened eagerly: ``open_stream``
returns only once the first event has arrived, so a failure up to that point can still fail
over to another deployment before the client has seen a byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from fulcrum.schema.openai import InferenceRequest


@dataclass(slots=True)
class Usage:
    """Token usage of one request, as the upstream reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # part of input_tokens read from a prompt cache
    cache_write_tokens: int = 0  # part of input_tokens written to a prompt cache (Bedrock)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Completion:
    """A complete (non-streaming) upstream answer, already in OpenAI's format."""

    body: bytes
    usage: Usage | None


class CompletionStream(Protocol):
    """An open upstream stream of OpenAI SSE bytes; ``usage`` is set once it is known."""

    usage: Usage | None
    completed: bool

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None:
        """Release the upstream request; closing early aborts it upstream."""


class Provider(Protocol):
    """One deployment's client."""

    async def complete(self, request: InferenceRequest, request_id: str) -> Completion: ...

    async def open_stream(self, request: InferenceRequest, request_id: str) -> CompletionStream: ...

    async def check_health(self) -> bool:
        """Active probe; True when the upstream can take traffic."""
        ...

    async def close(self) -> None: ...
