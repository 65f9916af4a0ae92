"""A deterministic stand-in tokenizer, so usage numbers are predictable without model files.

One token is a run of word characters (``\\w+``) or a single other non-space character;
whitespace is never a token by itself but travels with the token that follows it (as BPE
tokenizers glue the leading space to a word). Chat prompts add a fixed template overhead per
message, the way a chat template adds role markers. Everything here is a pure function: the
emulator's usage, ``/tokenize`` and max-model-len checks all count through this module, so
they always agree.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")

BOS_ID = 1
EOS_ID = 2
EOS_TEXT = "</s>"
"""How the end-of-sequence token is spelled in logprobs (its text is never in the content)."""

MESSAGE_OVERHEAD = 4
"""Template tokens around every chat message (start marker, role, separator, end marker)."""

GENERATION_PROMPT_TOKENS = 3
"""Template tokens that open the assistant turn when ``add_generation_prompt`` is true."""

TOOLS_OVERHEAD = 4
"""Template tokens around the JSON of the ``tools`` list when tools are given."""

NON_TEXT_PART_TOKENS = 16
"""Tokens charged for one non-text content part (image, audio, file) of a chat message."""

SPECIAL_IDS = {
    "<s>": BOS_ID,
    EOS_TEXT: EOS_ID,
    "<|start|>": 3,
    "<|sep|>": 4,
    "<|end|>": 5,
    "<|tools|>": 6,
    "<|media|>": 7,
}
"""Template and control tokens (as ``/tokenize`` spells them) and their ids."""

VOCAB_OFFSET = 100
"""Ids below this are special tokens; generated words use ``VOCAB_OFFSET + index``."""

HASHED_ID_BASE = 1000
HASHED_ID_SPAN = 120_000


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (no special tokens)."""
    return len(TOKEN_RE.findall(text))


def tokens(text: str) -> list[str]:
    """The token strings of ``text``, whitespace dropped."""
    return TOKEN_RE.findall(text)


def pieces(text: str) -> list[str]:
    """Split ``text`` losslessly into one piece per token (leading whitespace attached).

    ``"".join(pieces(t)) == t`` always holds; trailing whitespace joins the last piece.
    """
    found: list[str] = PIECE_RE.findall(text)
    consumed = sum(len(p) for p in found)
    if consumed < len(text):
        tail = text[consumed:]
        if found:
            found[-1] += tail
        else:
            found.append(tail)
    return found


def token_id(token: str, vocab_index: Mapping[str, int]) -> int:
    """A stable id: specials and vocabulary words have fixed ids, others a CRC-derived id."""
    special = SPECIAL_IDS.get(token)
    if special is not None:
        return special
    index = vocab_index.get(token.strip())
    if index is not None:
        return VOCAB_OFFSET + index
    return HASHED_ID_BASE + zlib.crc32(token.encode("utf-8")) % HASHED_ID_SPAN


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, Mapping):
                if part.get("type") == "text" or "text" in part:
                    text = part.get("text")
                    total += count_tokens(text) if isinstance(text, str) else 0
                else:
                    total += NON_TEXT_PART_TOKENS
            elif isinstance(part, str):
                total += count_tokens(part)
        return total
    return count_tokens(orjson.dumps(content).decode())


def message_tokens(message: Mapping[str, Any]) -> int:
    """Tokens one chat message contributes to the prompt, template overhead included."""
    total = MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
    name = message.get("name")
    if isinstance(name, str):
        total += count_tokens(name)
    tool_calls = message.get("tool_calls")
    if tool_calls:
        total += count_tokens(orjson.dumps(tool_calls).decode())
    tool_call_id = message.get("tool_call_id")
    if isinstance(tool_call_id, str):
        total += count_tokens(tool_call_id)
    return total


def chat_prompt_tokens(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    add_generation_prompt: bool = True,
) -> int:
    """Prompt tokens of a chat request: messages + template overhead + tool definitions."""
    total = sum(message_tokens(m) for m in messages)
    if add_generation_prompt:
        total += GENERATION_PROMPT_TOKENS
    if tools:
        total += TOOLS_OVERHEAD + count_tokens(orjson.dumps(list(tools)).decode())
    return total


def text_prompt_tokens(text: str, add_special_tokens: bool = True) -> int:
    """Prompt tokens of a completion prompt: its tokens plus BOS when special tokens are on."""
    return count_tokens(text) + (1 if add_special_tokens else 0)


def chat_prompt_token_strs(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    add_generation_prompt: bool = True,
) -> list[str]:
    """Token strings for a chat prompt (template markers spelled as ``<|...|>`` tokens).

    Its length always equals :func:`chat_prompt_tokens` of the same arguments.
    """
    out: list[str] = []
    for message in messages:
        role = message.get("role")
        out.append("<|start|>")
        out.append(str(role))
        out.append("<|sep|>")
        out.extend(_content_token_strs(message.get("content")))
        name = message.get("name")
        if isinstance(name, str):
            out.extend(tokens(name))
        tool_calls = message.get("tool_calls")
        if tool_calls:
            out.extend(tokens(orjson.dumps(tool_calls).decode()))
        tool_call_id = message.get("tool_call_id")
        if isinstance(tool_call_id, str):
            out.extend(tokens(tool_call_id))
        out.append("<|end|>")
    if add_generation_prompt:
        out.extend(["<|start|>", "assistant", "<|sep|>"])
    if tools:
        out.extend(["<|tools|>", "<|sep|>"])
        out.extend(tokens(orjson.dumps(list(tools)).decode()))
        out.extend(["<|sep|>", "<|end|>"])
    return out


def _content_token_strs(content: Any) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return tokens(content)
    if isinstance(content, list):
        out: list[str] = []
        for part in content:
            if isinstance(part, Mapping):
                if part.get("type") == "text" or "text" in part:
                    text = part.get("text")
                    out.extend(tokens(text) if isinstance(text, str) else [])
                else:
                    out.extend(["<|media|>"] * NON_TEXT_PART_TOKENS)
            elif isinstance(part, str):
                out.extend(tokens(part))
        return out
    return tokens(orjson.dumps(content).decode())


def ids_for(token_strs: Iterable[str], vocab_index: Mapping[str, int]) -> list[int]:
    """Ids of a sequence of token strings."""
    return [token_id(t, vocab_index) for t in token_strs]
