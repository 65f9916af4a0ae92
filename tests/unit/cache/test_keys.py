"""Cache keys: stable, sensitive to everything that changes an answer, blind to the rest."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.cache.keys import IGNORED_FIELDS, cache_key, normalise_body
from fulcrum.schema.openai import Endpoint
from tests.unit.cache.common import MESSAGES, chat, request

BASE = chat()
BASE_KEY = cache_key("acme", BASE)


def test_the_key_is_a_sha256_hex_digest_and_stable_across_calls() -> None:
    assert len(BASE_KEY) == 64
    assert int(BASE_KEY, 16) >= 0
    assert cache_key("acme", chat()) == BASE_KEY


def test_the_hash_input_is_the_documented_canonical_array() -> None:
    # If this fails, the serialisation changed: bump KEY_VERSION (old entries would otherwise
    # be read under the new rules) and update this test.
    canonical = (
        b'["fulcrum-cache/1","acme","chat/completions","small",{"messages":['
        b'{"content":[{"text":"You are terse.","type":"text"}],"role":"system"},'
        b'{"content":[{"text":"Name the largest planet.","type":"text"}],"role":"user"}],'
        b'"temperature":0.0}]'
    )
    assert hashlib.sha256(canonical).hexdigest() == BASE_KEY


def test_field_order_does_not_matter() -> None:
    reordered = request(
        Endpoint.CHAT,
        {"temperature": 0, "messages": list(MESSAGES), "model": "small"},
    )
    assert cache_key("acme", reordered) == BASE_KEY


def test_deriving_a_key_leaves_the_request_untouched() -> None:
    req = chat(user="u-1", stream=True, stream_options={"include_usage": True})
    before = copy.deepcopy(req.body)
    cache_key("acme", req)
    assert req.body == before


@pytest.mark.parametrize(
    "changes",
    [
        {"model": "large"},
        {"temperature": 0.5},
        {"top_p": 0.9},
        {"max_tokens": 16},
        {"max_completion_tokens": 16},
        {"seed": 7},
        {"stop": ["\n"]},
        {"n": 2},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"logit_bias": {"50256": -100}},
        {"logprobs": True},
        {"top_logprobs": 2, "logprobs": True},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
        {"reasoning_effort": "low"},
        {"service_tier": "flex"},
        {"top_k": 5},  # a vLLM extension: unknown fields count
        {"guided_json": {"type": "object"}},
        {"messages": [{"role": "user", "content": "Name the largest planet."}]},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "Name the largest planet. "}]},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "name the largest planet."}]},
        {"messages": [*MESSAGES[:1], {"role": "user", "content": "Name the largest  planet."}]},
        {"messages": [{"role": "developer", "content": "You are terse."}, MESSAGES[1]]},
        {"messages": [MESSAGES[0], {**MESSAGES[1], "name": "bob"}]},
        {"messages": [*MESSAGES, {"role": "assistant", "content": "Jupiter."}]},
    ],
)
def test_every_output_changing_parameter_changes_the_key(changes: dict[str, Any]) -> None:
    assert cache_key("acme", chat(**changes)) != BASE_KEY


@pytest.mark.parametrize(
    "changes",
    [
        {"stream": True},
        {"stream": False},
        {"stream": True, "stream_options": {"include_usage": True}},
        {"user": "end-user-42"},
        {"safety_identifier": "hash-of-user"},
        {"metadata": {"team": "search"}},
        {"store": True},
        {"prompt_cache_key": "conversation-9"},
        {"request_id": "abc"},
        {"temperature": 0.0},  # 0 and 0.0 are the same temperature
        {"seed": None, "stop": None},  # null means "default"
    ],
)
def test_fields_that_do_not_change_the_output_do_not_change_the_key(
    changes: dict[str, Any],
) -> None:
    assert cache_key("acme", chat(**changes)) == BASE_KEY


def test_every_ignored_field_is_really_ignored() -> None:
    body = {field: "x" for field in IGNORED_FIELDS if field != "model"}
    assert normalise_body({**BASE.body, **body}) == normalise_body(BASE.body)


def test_string_content_equals_a_single_text_part() -> None:
    parts = [
        {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
        {"role": "user", "content": [{"type": "text", "text": "Name the largest planet."}]},
    ]
    assert cache_key("acme", chat(messages=parts)) == BASE_KEY


def test_split_text_parts_are_not_the_joined_string() -> None:
    # Templates may join parts with a newline: two parts are not one string.
    parts = [
        MESSAGES[0],
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Name the largest "},
                {"type": "text", "text": "planet."},
            ],
        },
    ]
    assert cache_key("acme", chat(messages=parts)) != BASE_KEY


def test_null_message_fields_are_dropped() -> None:
    history = [*MESSAGES, {"role": "assistant", "content": "Jupiter.", "name": None}]
    plain = [*MESSAGES, {"role": "assistant", "content": "Jupiter."}]
    assert cache_key("acme", chat(messages=history)) == cache_key("acme", chat(messages=plain))


def test_an_image_part_is_part_of_the_key() -> None:
    def with_image(url: str) -> list[dict[str, Any]]:
        return [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]

    one = cache_key("acme", chat(messages=with_image("data:image/png;base64,AAAA")))
    other = cache_key("acme", chat(messages=with_image("data:image/png;base64,AAAB")))
    assert one != other


def test_a_legacy_prompt_string_equals_a_one_string_list_but_not_token_ids() -> None:
    def completion(prompt: Any) -> str:
        body = {"model": "small", "prompt": prompt, "temperature": 0}
        return cache_key("acme", request(Endpoint.COMPLETIONS, body))

    assert completion("Once upon") == completion(["Once upon"])
    assert completion("Once upon") != completion(["Once", "upon"])
    assert completion([1, 2, 3]) != completion([[1, 2, 3]])


def test_endpoints_never_share_a_key() -> None:
    chat_key = cache_key("acme", request(Endpoint.CHAT, {"model": "m", "messages": MESSAGES}))
    text = cache_key("acme", request(Endpoint.COMPLETIONS, {"model": "m", "prompt": "x"}))
    embed = cache_key("acme", request(Endpoint.EMBEDDINGS, {"model": "m", "input": "x"}))
    assert len({chat_key, text, embed}) == 3


def test_embeddings_input_string_equals_a_one_string_list() -> None:
    one = request(Endpoint.EMBEDDINGS, {"model": "e", "input": "hello"})
    listed = request(Endpoint.EMBEDDINGS, {"model": "e", "input": ["hello"]})
    dims = request(Endpoint.EMBEDDINGS, {"model": "e", "input": "hello", "dimensions": 256})
    assert cache_key("acme", one) == cache_key("acme", listed) != cache_key("acme", dims)


def test_tenants_never_share_a_key() -> None:
    assert cache_key("acme", BASE) != cache_key("globex", BASE)
    assert cache_key("acme", BASE) != cache_key("Acme", BASE)
    assert cache_key("acme", BASE) != cache_key("acme ", BASE)


def test_tenant_and_alias_are_framed_not_concatenated() -> None:
    # "a" + "b:c" and "a:b" + "c" would collide under naive concatenation.
    first = cache_key("a", chat(model="b:c"))
    second = cache_key("a:b", chat(model="c"))
    assert first != second


@given(
    st.text(min_size=1, max_size=12),
    st.text(min_size=1, max_size=12),
    st.text(min_size=1, max_size=12),
    st.text(min_size=1, max_size=12),
)
def test_distinct_tenant_alias_pairs_give_distinct_keys(
    tenant_a: str, alias_a: str, tenant_b: str, alias_b: str
) -> None:
    a = cache_key(tenant_a, chat(model=alias_a))
    b = cache_key(tenant_b, chat(model=alias_b))
    assert (a == b) == ((tenant_a, alias_a) == (tenant_b, alias_b))
