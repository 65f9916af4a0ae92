"""The stand-in tokenizer: counts are documented, stable, and agree across every entry point."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.sim.vllm import tokenizer as tok
from fulcrum.sim.vllm.generation import VOCAB_INDEX


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 1),
        ("Hello, world!", 4),
        ("  spaced   out  ", 2),
        ("don't", 3),
        ('{"a": 1}', 7),
    ],
)
def test_count_tokens_counts_words_and_punctuation(text: str, expected: int) -> None:
    assert tok.count_tokens(text) == expected


@pytest.mark.parametrize(
    "text", ["", "a", " a b", "Hello, world! ", '{"x": [1, 2]}', "tab\tnew\nline"]
)
def test_pieces_are_lossless_and_one_per_token(text: str) -> None:
    parts = tok.pieces(text)
    assert "".join(parts) == text
    assert len(parts) == max(tok.count_tokens(text), 1 if text else 0)


def test_chat_prompt_adds_template_overhead_per_message_and_generation_prompt() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},  # 3 tokens
        {"role": "user", "content": "Hi there!"},  # 3 tokens
    ]
    expected = 2 * tok.MESSAGE_OVERHEAD + 3 + 3 + tok.GENERATION_PROMPT_TOKENS
    assert tok.chat_prompt_tokens(messages) == expected
    assert tok.chat_prompt_tokens(messages, add_generation_prompt=False) == (
        expected - tok.GENERATION_PROMPT_TOKENS
    )


def test_chat_prompt_counts_text_parts_names_and_tools() -> None:
    message = {
        "role": "user",
        "name": "alice",
        "content": [{"type": "text", "text": "two words"}, {"type": "image_url"}],
    }
    base = tok.MESSAGE_OVERHEAD + 1 + 2 + tok.NON_TEXT_PART_TOKENS
    assert tok.chat_prompt_tokens([message], add_generation_prompt=False) == base
    tools = [{"type": "function", "function": {"name": "f"}}]
    with_tools = tok.chat_prompt_tokens([message], tools, add_generation_prompt=False)
    assert with_tools > base + tok.TOOLS_OVERHEAD


@pytest.mark.parametrize("with_tools", [False, True])
def test_chat_token_strings_match_the_count(with_tools: bool) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function"}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call-1"},
    ]
    tools = [{"type": "function", "function": {"name": "weather"}}] if with_tools else None
    strs = tok.chat_prompt_token_strs(messages, tools)
    assert len(strs) == tok.chat_prompt_tokens(messages, tools)


def test_text_prompt_adds_bos_only_with_special_tokens() -> None:
    assert tok.text_prompt_tokens("one two") == 3
    assert tok.text_prompt_tokens("one two", add_special_tokens=False) == 2


def test_token_ids_are_stable_and_vocabulary_words_have_fixed_ids() -> None:
    assert tok.token_id(" the", VOCAB_INDEX) == tok.VOCAB_OFFSET + VOCAB_INDEX["the"]
    assert tok.token_id("<s>", VOCAB_INDEX) == tok.BOS_ID
    other = tok.token_id("Zyzzyva", VOCAB_INDEX)
    assert other == tok.token_id("Zyzzyva", VOCAB_INDEX)
    assert other >= tok.HASHED_ID_BASE
