"""The prompt cache stage: exact-match answers, keyed per tenant, over a memory or Redis backend.

How the pipeline uses it, for one request::

    ticket = cache.decide(principal, request, headers.get(CACHE_HEADER))  # 400 on a bad header
    answer = await cache.lookup(ticket)            # after authorize/admit, before any call
    if answer is not None:                         # a hit: no upstream call at all
        ...answer.completion() or answer.stream()  # fresh id; cost 0; cache.record_saved(usd)
    ...call upstream...
    await cache.store(ticket, completion.body, completion.usage, deployment)   # non-streaming
    recorder = cache.recorder(ticket)              # streaming: feed it what the client gets,
    await cache.store_stream(ticket, recorder, stream.usage, deployment)       # then store
    response header: CACHE_HEADER: ticket.status   # hit | miss | bypass

A cache fault never fails a request: every backend error is a bypass (lookup) or a skipped
store, counted and logged by the backend. Isolation rests on the key: the tenant is part of
it (see :mod:`fulcrum.cache.keys`), so an answer only ever serves the tenant whose request
produced it, and a tenant whose policy forbids storing prompts is never looked up or stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.auth.principal import Principal
from fulcrum.cache.assemble import StreamRecorder
from fulcrum.cache.backend import CacheBackend
from fulcrum.cache.entry import CacheEntry, decode_entry, encode_entry
from fulcrum.cache.keys import cache_key
from fulcrum.cache.policy import CACHE_HEADER, CacheDecision, decide
from fulcrum.cache.replay import fresh_body, replay_sse
from fulcrum.config import CacheConfig, RedisConfig
from fulcrum.providers.base import Completion, Usage
from fulcrum.schema.openai import Endpoint, InferenceRequest
from fulcrum.telemetry.metrics import GatewayMetrics

__all__ = [
    "CACHE_HEADER",
    "CacheTicket",
    "CachedAnswer",
    "PromptCacheStage",
    "ReplayStream",
    "build_cache",
]

log = logging.getLogger(__name__)

HIT, MISS, BYPASS = "hit", "miss", "bypass"
_UNUSABLE_FINISH = frozenset({"error", "abort"})  # vLLM's finish reasons of a failed choice


@dataclass(slots=True)
class CacheTicket:
    """What the stage decided for one request, and (after lookup) how it went.

    ``status`` is the ``x-fulcrum-cache`` response header: ``bypass`` until a lookup or a
    refresh says otherwise, ``miss`` when the answer will come from upstream (a refresh too),
    ``hit`` when it came from the cache.
    """

    decision: CacheDecision
    key: str | None  # None when bypassed (no key was derived)
    request: InferenceRequest
    status: str


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer, ready to serve as a body or a stream (with a fresh id either way)."""

    entry: CacheEntry

    @property
    def usage(self) -> Usage | None:
        """What producing the answer cost upstream: the tokens a hit saved (not billed)."""
        return self.entry.usage

    @property
    def deployment(self) -> str:
        """The deployment that produced the answer: price ``usage`` with it to get the saving."""
        return self.entry.deployment

    def body(self, completion_id: str | None = None, created: int | None = None) -> bytes:
        return fresh_body(self.entry.body, completion_id, created)

    def completion(self, completion_id: str | None = None) -> Completion:
        """The answer for a non-streaming client; usage None (nothing was spent upstream)."""
        return Completion(body=self.body(completion_id), usage=None)

    def events(self, include_usage: bool, completion_id: str | None = None) -> list[bytes]:
        return replay_sse(self.entry.body, include_usage, completion_id=completion_id)

    def stream(self, include_usage: bool, completion_id: str | None = None) -> ReplayStream:
        """The answer for a streaming client, as a ``CompletionStream``."""
        return ReplayStream(self.events(include_usage, completion_id))


class ReplayStream:
    """A replayed answer behind the ``CompletionStream`` interface; one write, then done.

    ``usage`` stays None: a hit spent nothing upstream (the saving is ``CachedAnswer.usage``).
    """

    def __init__(self, events: list[bytes]) -> None:
        self._data = b"".join(events)
        self.usage: Usage | None = None
        self.completed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._replay()

    async def _replay(self) -> AsyncIterator[bytes]:
        if not self.completed:
            self.completed = True
            yield self._data

    async def aclose(self) -> None:
        return None


class PromptCacheStage:
    """Decides, looks up and stores; built once by :func:`build_cache`."""

    def __init__(
        self,
        backend: CacheBackend,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self._clock = clock
        lookups = metrics.cache_lookups
        self._lookups = {result: lookups.labels(result) for result in (HIT, MISS, BYPASS)}
        self._refreshes = lookups.labels("refresh")
        stores = metrics.cache_stores
        self._stores = {
            result: stores.labels(result)
            for result in ("stored", "too_large", "incomplete", "unavailable")
        }
        self._decode_errors = metrics.cache_errors.labels("decode")

    def decide(
        self, principal: Principal, request: InferenceRequest, header_value: str | None
    ) -> CacheTicket:
        """Look up, refresh or bypass this request; a 400 for an unknown header value."""
        decision = decide(request, principal.policy.cache, header_value)
        if not decision.store:
            return CacheTicket(decision, None, request, BYPASS)
        return CacheTicket(decision, cache_key(principal.tenant, request), request, MISS)

    async def lookup(self, ticket: CacheTicket) -> CachedAnswer | None:
        """The stored answer, or None (go upstream). Counts every request's outcome."""
        if ticket.key is None:
            self._lookups[BYPASS].inc()
            return None
        if not ticket.decision.lookup:
            self._refreshes.inc()
            return None
        try:
            data = await self.backend.get(ticket.key)
        except Exception:  # a backend bug must not fail the request: treat it as an outage
            log.exception("prompt cache: lookup failed")
            data = None
        if data is None:
            if not self.backend.available:
                ticket.status = BYPASS
                self._lookups[BYPASS].inc()
            else:
                self._lookups[MISS].inc()
            return None
        entry = decode_entry(data)
        if entry is None or entry.alias != ticket.request.model:
            self._decode_errors.inc()
            self._lookups[MISS].inc()
            return None
        ticket.status = HIT
        self._lookups[HIT].inc()
        return CachedAnswer(entry)

    async def store(
        self, ticket: CacheTicket, body: bytes, usage: Usage | None, deployment: str
    ) -> bool:
        """Keep a complete non-streaming answer (HTTP 200) for later requests; True if kept.

        Call it once the client has its answer: storing adds a Redis round trip.
        """
        if ticket.key is None or not ticket.decision.store:
            return False
        if len(body) > self.backend.max_entry_bytes:  # before parsing a large body for nothing
            self._stores["too_large"].inc()
            return False
        if not storable(ticket.request.endpoint, body):
            self._stores["incomplete"].inc()
            return False
        entry = CacheEntry(body, usage, self._clock(), ticket.request.model, deployment)
        return await self._put(ticket.key, encode_entry(entry))

    def recorder(self, ticket: CacheTicket) -> StreamRecorder | None:
        """A recorder for a streamed answer that may be stored; None when it may not."""
        if ticket.key is None or not ticket.decision.store:
            return None
        return StreamRecorder(max_chars=self.backend.max_entry_bytes)

    async def store_stream(
        self,
        ticket: CacheTicket,
        recorder: StreamRecorder,
        usage: Usage | None,
        deployment: str,
    ) -> bool:
        """Keep a streamed answer once it has finished; unfinished streams are not kept.

        ``usage`` is the stream's own (the gateway strips the usage chunk when the client did
        not ask for it, so the recorder may not have seen it).
        """
        if ticket.key is None or not ticket.decision.store:
            return False
        body = recorder.finish(usage)
        if body is None:
            self._stores["incomplete"].inc()
            return False
        entry = CacheEntry(body, usage, self._clock(), ticket.request.model, deployment)
        return await self._put(ticket.key, encode_entry(entry))

    async def _put(self, key: str, value: bytes) -> bool:
        if len(value) > self.backend.max_entry_bytes:
            self._stores["too_large"].inc()
            return False
        try:
            stored = await self.backend.set(key, value)
        except Exception:  # never fail a request that was served because the cache broke
            log.exception("prompt cache: store failed")
            stored = False
        self._stores["stored" if stored else "unavailable"].inc()
        return stored

    def record_saved(self, usd: float) -> None:
        """Count the upstream cost a hit avoided (the pipeline prices ``CachedAnswer.usage``)."""
        if usd > 0:
            self.metrics.cache_saved_usd.inc(usd)

    async def aclose(self) -> None:
        await self.backend.aclose()


def storable(endpoint: Endpoint, body: bytes) -> bool:
    """True when ``body`` is a complete answer worth serving again.

    Chat and completions need choices that all finished normally (a choice vLLM aborted or
    failed would be a wrong answer forever); embeddings need their data.
    """
    try:
        answer: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(answer, dict) or "error" in answer:
        return False
    if endpoint is Endpoint.EMBEDDINGS:
        return isinstance(answer.get("data"), list) and bool(answer["data"])
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            return False
        finish = choice.get("finish_reason")
        if finish is None or finish in _UNUSABLE_FINISH:
            return False
    return True


def build_cache(
    config: CacheConfig, redis: RedisConfig | None, metrics: GatewayMetrics
) -> PromptCacheStage | None:
    """The stage the configuration asks for; None when the cache is off."""
    if not config.enabled:
        return None
    backend: CacheBackend
    if config.backend == "memory":
        from fulcrum.cache.memory import MemoryCache

        backend = MemoryCache(config.max_bytes, config.ttl_seconds, config.max_entry_bytes)
    else:
        if redis is None:
            raise ValueError("cache.backend 'redis' needs a redis configuration")
        from fulcrum.cache.redis_cache import RedisCache  # only Redis deployments import it

        backend = RedisCache.from_config(redis, config.ttl_seconds, config.max_entry_bytes, metrics)
    return PromptCacheStage(backend, metrics)
