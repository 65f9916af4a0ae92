"""Whether one request may be answered from the cache, and whether its answer may be kept.

Pure: the request, the tenant's cache policy and the ``x-fulcrum-cache`` header in; a
:class:`CacheDecision` out. The default is conservative, because serving a stored answer to a
request that would have been answered differently is a correctness bug, while a needless miss
only costs money:

- embeddings are cacheable (a model maps the same input to the same vector);
- chat and legacy completions are cacheable when the output is meant to be reproducible:
  ``temperature`` is 0 or a ``seed`` is given; with one choice (``n`` absent or 1); and with
  no ``tools`` / ``functions`` (a tool call may stand for a side effect the caller expects to
  happen each time).

The header overrides the default per request: ``bypass`` (neither look up nor store) and
``refresh`` (skip the lookup, store the fresh answer; only for a cacheable request, since an
answer no later request may read is not worth keeping). An empty header or ``auto`` means the
default; any other value is a 400, like ``x-fulcrum-workload``, so a typo never silently
serves (or stores) what the client meant to avoid.

A tenant whose policy forbids storing prompts (``cache.allowed: false``) always bypasses,
whatever the header says: the policy is a promise to the tenant, the header a preference.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from fulcrum.api.errors import ApiError
from fulcrum.schema.openai import Endpoint, InferenceRequest

CACHE_HEADER = "x-fulcrum-cache"


class TenantCacheRules(Protocol):
    """What the policy reads of a tenant's configuration (``fulcrum.config.TenantCache``)."""

    @property
    def allowed(self) -> bool: ...


class CacheMode(enum.Enum):
    LOOKUP = "lookup"  # serve a stored answer if there is one; store the answer otherwise
    REFRESH = "refresh"  # go upstream, store the answer
    BYPASS = "bypass"  # go upstream, store nothing


class Directive(enum.Enum):
    """The client's ``x-fulcrum-cache`` request header."""

    AUTO = "auto"
    BYPASS = "bypass"
    REFRESH = "refresh"


# Why a request was (not) cached: a closed set, so it can label a metric or a log line.
CACHEABLE = "cacheable"
REFRESH = "refresh_requested"
BYPASS = "bypass_requested"
TENANT_FORBIDS = "tenant_policy"
SAMPLED = "sampled"  # temperature above 0 (or left at its default of 1) and no seed
SEVERAL_CHOICES = "n_above_1"
TOOLS = "tools"


@dataclass(frozen=True, slots=True)
class CacheDecision:
    mode: CacheMode
    reason: str

    @property
    def lookup(self) -> bool:
        return self.mode is CacheMode.LOOKUP

    @property
    def store(self) -> bool:
        return self.mode is not CacheMode.BYPASS


def parse_directive(value: str | None) -> Directive:
    """The ``x-fulcrum-cache`` request header, or a 400 naming the allowed values."""
    if value is None:
        return Directive.AUTO
    lowered = value.strip().lower()
    if not lowered:
        return Directive.AUTO
    for directive in Directive:
        if directive.value == lowered:
            return directive
    raise ApiError(
        400,
        f"{CACHE_HEADER} must be one of {', '.join(d.value for d in Directive)}",
        param=CACHE_HEADER,
        code="invalid_cache_directive",
    )


def not_cacheable(request: InferenceRequest) -> str | None:
    """Why the request's answer must not be reused by default; None when it may be."""
    if request.endpoint is Endpoint.EMBEDDINGS:
        return None
    body = request.body
    if body.get("tools") or body.get("functions"):
        return TOOLS
    n = body.get("n")
    if n is not None and n != 1:
        return SEVERAL_CHOICES
    if body.get("seed") is not None:
        return None
    temperature = body.get("temperature", 1.0)
    if isinstance(temperature, bool) or temperature != 0:
        return SAMPLED
    return None


def decide(
    request: InferenceRequest, tenant: TenantCacheRules, header_value: str | None
) -> CacheDecision:
    """Look up, refresh or bypass, and why. Raises a 400 for an unknown header value."""
    directive = parse_directive(header_value)
    if not tenant.allowed:
        return CacheDecision(CacheMode.BYPASS, TENANT_FORBIDS)
    if directive is Directive.BYPASS:
        return CacheDecision(CacheMode.BYPASS, BYPASS)
    reason = not_cacheable(request)
    if reason is not None:
        return CacheDecision(CacheMode.BYPASS, reason)
    if directive is Directive.REFRESH:
        return CacheDecision(CacheMode.REFRESH, REFRESH)
    return CacheDecision(CacheMode.LOOKUP, CACHEABLE)
