"""decide(): which requests are looked up, refreshed or bypassed, and why."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.cache import policy
from fulcrum.cache.policy import CacheMode, decide, parse_directive
from fulcrum.config import TenantCache
from fulcrum.schema.openai import Endpoint
from tests.unit.cache.common import chat, request

ALLOWED = TenantCache(allowed=True)
FORBIDDEN = TenantCache(allowed=False)
TOOL = {"type": "function", "function": {"name": "send_mail", "parameters": {}}}
DROP = ...  # removes a field from the default request


@pytest.mark.parametrize(
    ("fields", "mode", "reason"),
    [
        ({}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"temperature": 0.0}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"temperature": 0.7, "seed": 3}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"temperature": DROP, "seed": 3}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"n": 1}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"tools": []}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"stream": True}, CacheMode.LOOKUP, policy.CACHEABLE),
        ({"temperature": DROP}, CacheMode.BYPASS, policy.SAMPLED),  # default temperature is 1
        ({"temperature": 0.2}, CacheMode.BYPASS, policy.SAMPLED),
        ({"seed": None, "temperature": 1}, CacheMode.BYPASS, policy.SAMPLED),
        ({"n": 2}, CacheMode.BYPASS, policy.SEVERAL_CHOICES),
        ({"n": 2, "seed": 1}, CacheMode.BYPASS, policy.SEVERAL_CHOICES),
        ({"tools": [TOOL]}, CacheMode.BYPASS, policy.TOOLS),
        ({"tools": [TOOL], "tool_choice": "none"}, CacheMode.BYPASS, policy.TOOLS),
        ({"functions": [TOOL["function"]]}, CacheMode.BYPASS, policy.TOOLS),
    ],
)
def test_default_cacheability(fields: dict[str, Any], mode: CacheMode, reason: str) -> None:
    decision = decide(chat(**fields), ALLOWED, None)
    assert (decision.mode, decision.reason) == (mode, reason)


def test_legacy_completions_follow_the_same_rules() -> None:
    deterministic = request(Endpoint.COMPLETIONS, {"model": "m", "prompt": "x", "temperature": 0})
    sampled = request(Endpoint.COMPLETIONS, {"model": "m", "prompt": "x"})
    assert decide(deterministic, ALLOWED, None).mode is CacheMode.LOOKUP
    assert decide(sampled, ALLOWED, None).mode is CacheMode.BYPASS


def test_embeddings_are_cacheable() -> None:
    embed = request(Endpoint.EMBEDDINGS, {"model": "e", "input": "hello"})
    assert decide(embed, ALLOWED, None).mode is CacheMode.LOOKUP


@pytest.mark.parametrize(
    ("header", "fields", "mode", "reason"),
    [
        (None, {}, CacheMode.LOOKUP, policy.CACHEABLE),
        ("", {}, CacheMode.LOOKUP, policy.CACHEABLE),
        ("auto", {}, CacheMode.LOOKUP, policy.CACHEABLE),
        ("bypass", {}, CacheMode.BYPASS, policy.BYPASS),
        (" Bypass ", {}, CacheMode.BYPASS, policy.BYPASS),
        ("refresh", {}, CacheMode.REFRESH, policy.REFRESH),
        ("REFRESH", {}, CacheMode.REFRESH, policy.REFRESH),
        ("refresh", {"temperature": 0.9}, CacheMode.BYPASS, policy.SAMPLED),
        ("bypass", {"temperature": 0.9}, CacheMode.BYPASS, policy.BYPASS),
    ],
)
def test_the_header_overrides_per_request(
    header: str | None, fields: dict[str, Any], mode: CacheMode, reason: str
) -> None:
    decision = decide(chat(**fields), ALLOWED, header)
    assert (decision.mode, decision.reason) == (mode, reason)


@pytest.mark.parametrize("header", [None, "auto", "refresh", "bypass"])
def test_a_tenant_that_forbids_storing_prompts_always_bypasses(header: str | None) -> None:
    decision = decide(chat(), FORBIDDEN, header)
    assert (decision.mode, decision.reason) == (CacheMode.BYPASS, policy.TENANT_FORBIDS)
    assert not decision.lookup and not decision.store


def test_lookup_and_store_flags() -> None:
    assert decide(chat(), ALLOWED, None).lookup
    assert decide(chat(), ALLOWED, None).store
    refresh = decide(chat(), ALLOWED, "refresh")
    assert not refresh.lookup and refresh.store


@pytest.mark.parametrize("header", ["on", "no-cache", "hit", "bypass,refresh"])
def test_an_unknown_header_value_is_a_400(header: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_directive(header)
    error = caught.value
    assert (error.status, error.code, error.param) == (
        400,
        "invalid_cache_directive",
        "x-fulcrum-cache",
    )
    with pytest.raises(ApiError):
        decide(chat(), FORBIDDEN, header)  # a malformed request is malformed for everyone
