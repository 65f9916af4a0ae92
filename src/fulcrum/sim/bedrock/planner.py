"""Deciding the whole reply to a validated Converse request, before any byte is sent.

* A tool is called when ``toolChoice`` is ``tool`` (that tool) or ``any`` (the tool the last
  user turn names, else the first tool), or — with ``auto`` or no ``toolChoice`` — when the
  last user turn names one of the tools (see :func:`generation.mentions`) and does not carry
  ``toolResult`` blocks. After a ``toolResult`` the model answers with text.
* With ``auto`` the call is preceded by a short text block (``Let me use the <name> tool.``),
  as Claude does; ``any``/``tool`` produce the ``toolUse`` block alone.
* ``maxTokens`` cuts text; if the budget ends before the ``toolUse`` block is complete, the
  block is left out and ``stopReason`` is ``max_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fulcrum.sim.bedrock import generation as gen
from fulcrum.sim.bedrock.protocol import ConverseRequest, ToolSpec
from fulcrum.sim.bedrock.tokenizer import pieces


@dataclass(frozen=True, slots=True)
class ToolCall:
    tool_use_id: str
    name: str
    input: dict[str, Any]
    input_json: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The assistant message, its stop reason and its output tokens."""

    text: str | None
    """The text block (None: the message has no text block)."""
    tool: ToolCall | None
    stop_reason: str
    output_tokens: int

    def text_pieces(self) -> list[str]:
        return pieces(self.text) if self.text else ([""] if self.text is not None else [])

    def input_pieces(self) -> list[str]:
        return pieces(self.tool.input_json) if self.tool is not None else []

    @property
    def deltas(self) -> int:
        """Number of ``contentBlockDelta`` events a stream of this reply carries."""
        return len(self.text_pieces()) + len(self.input_pieces())


def choose_tool(req: ConverseRequest) -> ToolSpec | None:
    """The tool the model calls for this request, if any."""
    if not req.tools:
        return None
    if req.tool_choice == "tool":
        return next(spec for spec in req.tools if spec.name == req.tool_choice_name)
    named = next((s for s in req.tools if gen.mentions(req.last_user_text, s.name)), None)
    if req.tool_choice == "any":
        return named or req.tools[0]
    if req.answers_tool_result:
        return None
    return named


def plan_reply(req: ConverseRequest, min_output_tokens: int, max_output_tokens: int) -> Reply:
    """The reply to ``req``; natural text length in ``[min, max]`` output tokens."""
    spec = choose_tool(req)
    if spec is None:
        length = gen.natural_length(req.seed, min_output_tokens, max_output_tokens)
        cut = gen.cut_text(
            gen.natural_text(req.seed, length), req.max_tokens, req.stop_sequences, "end_turn"
        )
        return Reply(cut.text, None, cut.stop_reason, cut.tokens)
    arguments = gen.tool_input(spec.schema, req.seed)
    call = ToolCall(
        gen.tool_use_id(req.seed),
        spec.name,
        arguments,
        orjson.dumps(arguments).decode(),
    )
    call_tokens = gen.tool_use_tokens(call.name, call.input_json)
    budget = req.max_tokens
    text: str | None = None
    used = 0
    if req.tool_choice not in ("any", "tool"):
        cut = gen.cut_text(
            f"Let me use the {spec.name} tool.", budget, req.stop_sequences, "tool_use"
        )
        if cut.stop_reason != "tool_use":
            return Reply(cut.text, None, cut.stop_reason, cut.tokens)
        text, used = cut.text, cut.tokens
    if budget is not None and used + call_tokens > budget:
        return Reply(text if text is not None else "", None, "max_tokens", budget)
    return Reply(text, call, "tool_use", used + call_tokens)
