"""Token estimates for when the upstream never reported usage (an aborted stream).

Deliberately simple (about four characters per token, as OpenAI's guidance for English) —
an estimate keeps cost accounting from silently counting zero; exact counts come from the
upstream whenever it gets to send them.
"""

from __future__ import annotations

from typing import Any

CHARS_PER_TOKEN = 4
PER_MESSAGE_OVERHEAD = 4


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return _text_length(value.get("text")) + _text_length(value.get("content"))
    return 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat, completions or embeddings request, estimated from its text."""
    messages = body.get("messages")
    if isinstance(messages, list):
        chars = sum(_text_length(m.get("content")) for m in messages if isinstance(m, dict))
        return chars // CHARS_PER_TOKEN + PER_MESSAGE_OVERHEAD * len(messages)
    prompt = body.get("prompt", body.get("input"))
    return _text_length(prompt) // CHARS_PER_TOKEN
