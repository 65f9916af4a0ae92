"""A deterministic stand-in tokenizer: usage numbers are predictable without model files.

One token is a run of word characters (``\\w+``) or one other non-space character; whitespace
travels with the token after it. ``"Hello, world!"`` is 4 tokens. Prompt accounting for
Converse adds fixed overheads (documented in docs/emulator-bedrock.md):

* every message: :data:`MESSAGE_OVERHEAD` + its blocks;
* the system prompt (when given): :data:`SYSTEM_OVERHEAD` + its text;
* tools (when given): :data:`TOOLS_OVERHEAD` + the tokens of their specs' JSON;
* an image or a document given as bytes: :data:`MEDIA_TOKENS` each;
* the assistant turn being generated: :data:`GENERATION_PROMPT_TOKENS`.

Output: a text block counts its tokens; a ``toolUse`` block counts the tokens of the tool name
and of its input JSON plus :data:`TOOL_USE_OVERHEAD`.
"""

from __future__ import annotations

import re

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")

MESSAGE_OVERHEAD = 4
SYSTEM_OVERHEAD = 3
TOOLS_OVERHEAD = 8
BLOCK_OVERHEAD = 2
"""Extra tokens around a ``toolUse`` or ``toolResult`` block in the prompt."""
MEDIA_TOKENS = 64
GENERATION_PROMPT_TOKENS = 3
TOOL_USE_OVERHEAD = 4


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(TOKEN_RE.findall(text))


def pieces(text: str) -> list[str]:
    """``text`` split into one piece per token, losslessly (``"".join(pieces(t)) == t``)."""
    found: list[str] = PIECE_RE.findall(text)
    consumed = sum(len(p) for p in found)
    if consumed < len(text):
        tail = text[consumed:]
        if found:
            found[-1] += tail
        else:
            found.append(tail)
    return found
