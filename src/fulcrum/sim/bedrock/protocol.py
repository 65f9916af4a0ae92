"""Request parsing and validation: Converse/ConverseStream bodies and Titan embedding bodies.

Validation happens in the order AWS applies it:

1. the body must be a JSON object whose members have the modelled JSON types
   (``SerializationException`` otherwise);
2. the service model's constraints — required members, enums, lengths, ranges, patterns,
   "exactly one member" of a union — are collected and reported together as AWS's front end
   does: ``N validation error(s) detected: Value ... at 'path' failed to satisfy constraint:
   ...`` (``ValidationException``; list positions are 1-based ``.member.`` paths);
3. Bedrock's conversation rules, first failure wins, with Bedrock's own messages (0-based
   ``messages.N.content`` paths): the conversation starts with a user turn, roles alternate,
   no empty content or blank text, ``toolResult`` blocks answer the previous turn's
   ``toolUse`` ids, ``toolConfig`` is present when tool blocks are, ``maxTokens`` is within the
   model's limit, the prompt fits the context window, the model supports the features used.

While walking the request the parser also counts prompt tokens (see ``tokenizer``), finds the
prompt-cache checkpoints (``cachePoint`` blocks) and computes the request's seed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fulcrum.sim.bedrock import tokenizer as tok
from fulcrum.sim.bedrock.catalog import CHAT, ModelSpec
from fulcrum.sim.bedrock.errors import BedrockError, validation
from fulcrum.sim.bedrock.generation import canonical_json, request_seed

MAX_CACHE_POINTS = 4
CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}
_TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")
_TOOL_USE_ID_RE = re.compile(r"[a-zA-Z0-9_.:-]+")
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
_DOCUMENT_FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
_CONTENT_MEMBERS = (
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
    "toolAddition",
    "toolRemoval",
)
_SYSTEM_MEMBERS = ("text", "guardContent", "cachePoint")
_TOOL_RESULT_MEMBERS = ("json", "text", "image", "document", "video", "searchResult")
_UNSUPPORTED_MEMBERS = ("video", "audio", "toolAddition", "toolRemoval")

START_WITH_USER = (
    "A conversation must start with a user message. "
    "Try again with a conversation that starts with a user message."
)
ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)
TOOL_CONFIG_REQUIRED = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)
INPUT_TOO_LONG = "Input is too long for requested model."
WRONG_MODEL_KIND = (
    "This action doesn't support the model that you provided. "
    "Try again with a supported text or chat model."
)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    schema: Any


@dataclass(frozen=True, slots=True)
class CachePoint:
    """A prompt-cache checkpoint: the hash of the prompt before it and its token count."""

    key: bytes
    tokens: int
    ttl_s: float


@dataclass(slots=True)
class ConverseRequest:
    """A validated Converse request, reduced to what the reply depends on."""

    seed: int
    input_tokens: int
    max_tokens: int | None
    stop_sequences: tuple[str, ...]
    tools: tuple[ToolSpec, ...]
    tool_choice: str | None
    """``auto``, ``any``, ``tool`` or None (no ``toolChoice`` given)."""
    tool_choice_name: str | None
    answers_tool_result: bool
    """The last turn is a user turn carrying ``toolResult`` blocks."""
    last_user_text: str
    cache_points: list[CachePoint] = field(default_factory=list)
    echo: dict[str, Any] = field(default_factory=dict)
    """Request members Bedrock echoes in the response (``performanceConfig``, ``serviceTier``)."""


# ------------------------------------------------------------------------------- helpers


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _serialization(path: str, expected: str, value: Any) -> BedrockError:
    return BedrockError(
        "SerializationException",
        f"Expected {expected} at '{path}', found {_json_type(value)}.",
    )


def _shown(value: Any) -> str:
    return "null" if value is None else f"'{value}'"


class _Violations:
    """AWS front-end constraint violations, collected and reported together."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        self.items.append(
            f"Value {_shown(value)} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def required(self, obj: Mapping[str, Any], key: str, path: str) -> bool:
        if obj.get(key) is None:
            self.add(None, f"{path}.{key}" if path else key, "Member must not be null")
            return False
        return True

    def length(self, value: str | list[Any], path: str, low: int, high: int | None) -> None:
        if len(value) < low:
            self.add(value, path, f"Member must have length greater than or equal to {low}")
        elif high is not None and len(value) > high:
            self.add(value, path, f"Member must have length less than or equal to {high}")

    def enum(self, value: Any, path: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.add(value, path, f"Member must satisfy enum value set: [{', '.join(allowed)}]")

    def pattern(self, value: str, path: str, regex: re.Pattern[str]) -> None:
        if not regex.fullmatch(value):
            self.add(
                value, path, f"Member must satisfy regular expression pattern: {regex.pattern}"
            )

    def union(self, block: Mapping[str, Any], path: str, members: tuple[str, ...]) -> str | None:
        set_members = [m for m in members if block.get(m) is not None]
        if len(set_members) != 1:
            self.items.append(
                f"Value at '{path}' failed to satisfy constraint: Member must have exactly one "
                f"of the following members set: [{', '.join(members)}]"
            )
            return None
        return set_members[0]

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            noun = "error" if count == 1 else "errors"
            raise validation(f"{count} validation {noun} detected: " + "; ".join(self.items))


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _serialization(path, "an object", value)
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _serialization(path, "an array", value)
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _serialization(path, "a string", value)
    return value


def _num(value: Any, path: str, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _serialization(path, "a number", value)
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise _serialization(path, "an integer", value)
    return value


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``), else SerializationException."""
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BedrockError("SerializationException", f"Malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise _serialization("", "an object", data)
    return data


def _check_blob(value: Any, path: str, v: _Violations) -> int:
    """A base64 blob: its decoded length (0 when invalid, with a violation recorded)."""
    text = _str(value, path)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BedrockError("SerializationException", f"Invalid base64 value at '{path}'.") from None
    if not decoded:
        v.length("", path, 1, None)
    return len(decoded)


def _check_cache_point(block: Any, path: str, v: _Violations) -> float:
    cp = _obj(block, path)
    if v.required(cp, "type", path):
        v.enum(_str(cp["type"], f"{path}.type"), f"{path}.type", ("default",))
    ttl = cp.get("ttl")
    if ttl is not None:
        v.enum(_str(ttl, f"{path}.ttl"), f"{path}.ttl", ("5m", "1h"))
        return CACHE_TTL_S.get(ttl, 300.0)
    return 300.0


def _check_image(block: Any, path: str, v: _Violations) -> None:
    image = _obj(block, path)
    if v.required(image, "format", path):
        v.enum(_str(image["format"], f"{path}.format"), f"{path}.format", _IMAGE_FORMATS)
    if v.required(image, "source", path):
        source = _obj(image["source"], f"{path}.source")
        member = v.union(source, f"{path}.source", ("bytes", "s3Location"))
        if member == "bytes":
            _check_blob(source["bytes"], f"{path}.source.bytes", v)
        elif member == "s3Location":
            loc = _obj(source["s3Location"], f"{path}.source.s3Location")
            v.required(loc, "uri", f"{path}.source.s3Location")


def _document_tokens(block: Any, path: str, v: _Violations) -> int:
    doc = _obj(block, path)
    tokens = tok.MEDIA_TOKENS
    if doc.get("format") is not None:
        v.enum(_str(doc["format"], f"{path}.format"), f"{path}.format", _DOCUMENT_FORMATS)
    if v.required(doc, "name", path):
        name = _str(doc["name"], f"{path}.name")
        v.length(name, f"{path}.name", 1, 200)
        tokens += tok.count_tokens(name)
    if v.required(doc, "source", path):
        source = _obj(doc["source"], f"{path}.source")
        member = v.union(source, f"{path}.source", ("bytes", "s3Location", "text", "content"))
        if member == "bytes":
            _check_blob(source["bytes"], f"{path}.source.bytes", v)
        elif member == "text":
            tokens += tok.count_tokens(_str(source["text"], f"{path}.source.text"))
        elif member == "content":
            for i, part in enumerate(_list(source["content"], f"{path}.source.content")):
                part = _obj(part, f"{path}.source.content.{i + 1}.member")
                text = part.get("text")
                if text is not None:
                    tokens += tok.count_tokens(_str(text, f"{path}.source.content.{i + 1}.text"))
    return tokens


def _text_of(block: Any) -> str | None:
    if isinstance(block, dict):
        text = block.get("text")
        if isinstance(text, str):
            return text
    return None


# --------------------------------------------------------------------------- converse


@dataclass(slots=True)
class _Walk:
    """Running state while walking tools → system → messages (the prompt's order)."""

    tokens: int = 0
    hasher: Any = None
    cache_points: list[CachePoint] = field(default_factory=list)

    def part(self, value: Any, tokens: int) -> None:
        self.tokens += tokens
        if self.hasher is not None:
            self.hasher.update(canonical_json(value))
            self.hasher.update(b"\x1e")

    def checkpoint(self, ttl_s: float) -> None:
        if self.hasher is not None:
            self.cache_points.append(CachePoint(self.hasher.copy().digest(), self.tokens, ttl_s))


def _parse_tools(
    data: dict[str, Any], v: _Violations, walk: _Walk
) -> tuple[tuple[ToolSpec, ...], str | None, str | None, bool]:
    config = data.get("toolConfig")
    if config is None:
        return (), None, None, False
    config = _obj(config, "toolConfig")
    specs: list[ToolSpec] = []
    if v.required(config, "tools", "toolConfig"):
        tools = _list(config["tools"], "toolConfig.tools")
        v.length(tools, "toolConfig.tools", 1, None)
        walk.part("tools", tok.TOOLS_OVERHEAD)
        for i, tool in enumerate(tools):
            path = f"toolConfig.tools.{i + 1}.member"
            tool = _obj(tool, path)
            member = v.union(tool, path, ("toolSpec", "systemTool", "cachePoint"))
            if member == "cachePoint":
                walk.checkpoint(_check_cache_point(tool["cachePoint"], f"{path}.cachePoint", v))
            elif member == "systemTool":
                system_tool = _obj(tool["systemTool"], f"{path}.systemTool")
                v.required(system_tool, "name", f"{path}.systemTool")
                walk.part(system_tool, tok.count_tokens(orjson.dumps(system_tool).decode()))
            elif member == "toolSpec":
                spath = f"{path}.toolSpec"
                spec = _obj(tool["toolSpec"], spath)
                name = ""
                if v.required(spec, "name", spath):
                    name = _str(spec["name"], f"{spath}.name")
                    v.length(name, f"{spath}.name", 1, 64)
                    v.pattern(name, f"{spath}.name", _TOOL_NAME_RE)
                description = spec.get("description")
                if description is not None:
                    v.length(
                        _str(description, f"{spath}.description"), f"{spath}.description", 1, None
                    )
                schema: Any = None
                if v.required(spec, "inputSchema", spath):
                    input_schema = _obj(spec["inputSchema"], f"{spath}.inputSchema")
                    if v.union(input_schema, f"{spath}.inputSchema", ("json",)) == "json":
                        schema = input_schema["json"]
                specs.append(ToolSpec(name, schema))
                walk.part(spec, tok.count_tokens(orjson.dumps(spec).decode()))
    choice: str | None = None
    choice_name: str | None = None
    raw_choice = config.get("toolChoice")
    if raw_choice is not None:
        raw_choice = _obj(raw_choice, "toolConfig.toolChoice")
        choice = v.union(raw_choice, "toolConfig.toolChoice", ("auto", "any", "tool"))
        if choice is not None:
            body = _obj(raw_choice[choice], f"toolConfig.toolChoice.{choice}")
            if choice == "tool" and v.required(body, "name", "toolConfig.toolChoice.tool"):
                choice_name = _str(body["name"], "toolConfig.toolChoice.tool.name")
                v.pattern(choice_name, "toolConfig.toolChoice.tool.name", _TOOL_NAME_RE)
    return tuple(specs), choice, choice_name, True


def _parse_system(data: dict[str, Any], v: _Violations, walk: _Walk) -> None:
    system = data.get("system")
    if system is None:
        return
    blocks = _list(system, "system")
    if blocks:
        walk.part("system", tok.SYSTEM_OVERHEAD)
    for i, block in enumerate(blocks):
        path = f"system.{i + 1}.member"
        block = _obj(block, path)
        member = v.union(block, path, _SYSTEM_MEMBERS)
        if member == "text":
            text = _str(block["text"], f"{path}.text")
            v.length(text, f"{path}.text", 1, None)
            walk.part(block, tok.count_tokens(text))
        elif member == "guardContent":
            walk.part(
                block,
                tok.count_tokens(_text_of(_obj(block["guardContent"], path).get("text")) or ""),
            )
        elif member == "cachePoint":
            walk.checkpoint(_check_cache_point(block["cachePoint"], f"{path}.cachePoint", v))


@dataclass(slots=True)
class _Turn:
    role: str
    tool_use_ids: list[str] = field(default_factory=list)
    tool_result_ids: list[str] = field(default_factory=list)
    empty: bool = False
    blank_text_at: int | None = None
    unsupported: str | None = None
    images: bool = False
    error_result_empty_at: int | None = None
    text: str = ""


def _block_tokens(
    block: dict[str, Any], member: str, path: str, v: _Violations, turn: _Turn, index: int
) -> int:
    if member == "text":
        text = _str(block["text"], f"{path}.text")
        if not text.strip() and turn.blank_text_at is None:
            turn.blank_text_at = index
        turn.text += text
        return tok.count_tokens(text)
    if member == "image":
        _check_image(block["image"], f"{path}.image", v)
        turn.images = True
        return tok.MEDIA_TOKENS
    if member == "document":
        return _document_tokens(block["document"], f"{path}.document", v)
    if member == "toolUse":
        upath = f"{path}.toolUse"
        use = _obj(block["toolUse"], upath)
        tokens = tok.BLOCK_OVERHEAD
        if v.required(use, "toolUseId", upath):
            use_id = _str(use["toolUseId"], f"{upath}.toolUseId")
            v.length(use_id, f"{upath}.toolUseId", 1, 64)
            v.pattern(use_id, f"{upath}.toolUseId", _TOOL_USE_ID_RE)
            turn.tool_use_ids.append(use_id)
        if v.required(use, "name", upath):
            name = _str(use["name"], f"{upath}.name")
            v.pattern(name, f"{upath}.name", _TOOL_NAME_RE)
            tokens += tok.count_tokens(name)
        if v.required(use, "input", upath):
            tokens += tok.count_tokens(orjson.dumps(use["input"]).decode())
        return tokens
    if member == "toolResult":
        rpath = f"{path}.toolResult"
        result = _obj(block["toolResult"], rpath)
        tokens = tok.BLOCK_OVERHEAD
        if v.required(result, "toolUseId", rpath):
            result_id = _str(result["toolUseId"], f"{rpath}.toolUseId")
            v.length(result_id, f"{rpath}.toolUseId", 1, 64)
            v.pattern(result_id, f"{rpath}.toolUseId", _TOOL_USE_ID_RE)
            turn.tool_result_ids.append(result_id)
        status = result.get("status")
        if status is not None:
            v.enum(_str(status, f"{rpath}.status"), f"{rpath}.status", ("success", "error"))
        if v.required(result, "content", rpath):
            parts = _list(result["content"], f"{rpath}.content")
            if not parts and status == "error" and turn.error_result_empty_at is None:
                turn.error_result_empty_at = index
            for j, part in enumerate(parts):
                ppath = f"{rpath}.content.{j + 1}.member"
                part = _obj(part, ppath)
                kind = v.union(part, ppath, _TOOL_RESULT_MEMBERS)
                if kind == "text":
                    tokens += tok.count_tokens(_str(part["text"], f"{ppath}.text"))
                elif kind == "json":
                    tokens += tok.count_tokens(orjson.dumps(part["json"]).decode())
                elif kind == "image":
                    _check_image(part["image"], f"{ppath}.image", v)
                    turn.images = True
                    tokens += tok.MEDIA_TOKENS
                elif kind == "document":
                    tokens += _document_tokens(part["document"], f"{ppath}.document", v)
                elif kind == "video":
                    turn.unsupported = turn.unsupported or "video"
                elif kind is not None:
                    tokens += tok.count_tokens(orjson.dumps(part[kind]).decode())
        return tokens
    if member == "guardContent":
        return tok.count_tokens(_text_of(_obj(block["guardContent"], path).get("text")) or "")
    if member == "reasoningContent":
        reasoning = _obj(block["reasoningContent"], f"{path}.reasoningContent")
        return tok.count_tokens(_text_of(reasoning.get("reasoningText")) or "")
    if member in _UNSUPPORTED_MEMBERS:
        turn.unsupported = turn.unsupported or member
        return 0
    return tok.count_tokens(orjson.dumps(block[member]).decode())


def _parse_messages(data: dict[str, Any], v: _Violations, walk: _Walk) -> list[_Turn]:
    raw = data.get("messages")
    if raw is None:
        return []
    turns: list[_Turn] = []
    for i, message in enumerate(_list(raw, "messages")):
        path = f"messages.{i + 1}.member"
        message = _obj(message, path)
        role = ""
        if v.required(message, "role", path):
            role = _str(message["role"], f"{path}.role")
            v.enum(role, f"{path}.role", ("user", "assistant", "system"))
        turn = _Turn(role)
        turns.append(turn)
        walk.part(role, tok.MESSAGE_OVERHEAD)
        if not v.required(message, "content", path):
            continue
        blocks = _list(message["content"], f"{path}.content")
        turn.empty = not blocks
        for j, block in enumerate(blocks):
            bpath = f"{path}.content.{j + 1}.member"
            block = _obj(block, bpath)
            member = v.union(block, bpath, _CONTENT_MEMBERS)
            if member == "cachePoint":
                walk.checkpoint(_check_cache_point(block["cachePoint"], f"{bpath}.cachePoint", v))
            elif member is not None:
                walk.part(block, _block_tokens(block, member, bpath, v, turn, j))
    return turns


def _check_conversation(turns: list[_Turn], has_tool_config: bool, model: ModelSpec) -> None:
    """Bedrock's conversation rules, with its messages; the first failure wins."""
    if not turns or turns[0].role != "user":
        raise validation(START_WITH_USER)
    previous: _Turn | None = None
    for i, turn in enumerate(turns):
        if turn.role == "system" or (previous is not None and previous.role == turn.role):
            raise validation(ALTERNATE)
        if turn.empty:
            raise validation(
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        if turn.blank_text_at is not None:
            raise validation(
                f"The text field in the ContentBlock object at messages.{i}.content."
                f"{turn.blank_text_at} is blank. Add text to the text field, and try again."
            )
        if (turn.tool_use_ids or turn.tool_result_ids) and not has_tool_config:
            raise validation(TOOL_CONFIG_REQUIRED)
        if turn.role == "user" and turn.tool_use_ids:
            raise validation(
                f"messages.{i}.content: toolUse blocks are only allowed in assistant messages."
            )
        if turn.role == "assistant" and turn.tool_result_ids:
            raise validation(
                f"messages.{i}.content: toolResult blocks are only allowed in user messages."
            )
        if turn.error_result_empty_at is not None:
            raise validation(
                f"The content field at messages.{i}.content.{turn.error_result_empty_at}"
                ".toolResult cannot be empty when status value is error."
            )
        if turn.role == "user" and previous is not None:
            expected = previous.tool_use_ids
            got = turn.tool_result_ids
            if len(got) > len(expected):
                raise validation(
                    f"The number of toolResult blocks at messages.{i}.content exceeds the "
                    "number of toolUse blocks of previous turn."
                )
            missing = [use_id for use_id in expected if use_id not in got]
            if missing:
                raise validation(
                    f"Expected toolResult blocks at messages.{i}.content for the following "
                    f"Ids: {', '.join(missing)}"
                )
        if turn.unsupported is not None:
            raise validation(
                f"This model doesn't support the {turn.unsupported} content block that you "
                "provided. Try again with a supported content block."
            )
        if turn.images and not model.images:
            raise validation(
                "This model doesn't support image content. Remove the image content block "
                "and try again."
            )
        previous = turn


def parse_converse(raw: bytes, model: ModelSpec, model_key: str) -> ConverseRequest:
    """Validate a Converse(Stream) body for ``model``; ``model_key`` seeds the output."""
    data = parse_json_object(raw)
    if model.kind != CHAT:
        raise validation(WRONG_MODEL_KIND)
    v = _Violations()
    walk = _Walk()
    if b'"cachePoint"' in raw:  # cheap pre-scan: only these requests pay for prefix hashing
        walk.hasher = hashlib.blake2b(model_key.encode("utf-8"), digest_size=16)

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stops: list[str] = []
    config = data.get("inferenceConfig")
    if config is not None:
        config = _obj(config, "inferenceConfig")
        if config.get("maxTokens") is not None:
            max_tokens = int(_num(config["maxTokens"], "inferenceConfig.maxTokens", integer=True))
            if max_tokens < 1:
                v.add(
                    max_tokens,
                    "inferenceConfig.maxTokens",
                    "Member must have value greater than or equal to 1",
                )
        for key in ("temperature", "topP"):
            if config.get(key) is not None:
                value = _num(config[key], f"inferenceConfig.{key}")
                if not 0 <= value <= 1:
                    bound = "greater than or equal to 0" if value < 0 else "less than or equal to 1"
                    v.add(value, f"inferenceConfig.{key}", f"Member must have value {bound}")
                if key == "temperature":
                    temperature = value
                else:
                    top_p = value
        if config.get("stopSequences") is not None:
            seqs = _list(config["stopSequences"], "inferenceConfig.stopSequences")
            v.length(seqs, "inferenceConfig.stopSequences", 0, 2500)
            for i, seq in enumerate(seqs):
                spath = f"inferenceConfig.stopSequences.{i + 1}.member"
                seq = _str(seq, spath)
                v.length(seq, spath, 1, None)
                stops.append(seq)
    extra = data.get("additionalModelRequestFields")
    if extra is not None:
        _obj(extra, "additionalModelRequestFields")

    tools, choice, choice_name, has_tool_config = _parse_tools(data, v, walk)
    _parse_system(data, v, walk)
    turns = _parse_messages(data, v, walk)
    v.raise_if_any()

    _check_conversation(turns, has_tool_config, model)
    if choice is not None and choice not in model.tool_choices:
        raise validation(
            f"This model doesn't support the toolConfig.toolChoice.{choice} field. "
            f"Remove toolConfig.toolChoice.{choice} and try again."
        )
    names = [spec.name for spec in tools]
    if len(set(names)) != len(names):
        raise validation(
            "The model returned the following errors: tools: Tool names must be unique."
        )
    if choice == "tool" and choice_name not in names:
        raise validation(
            f"The model returned the following errors: tool_choice.name: Tool '{choice_name}' "
            "not found in provided tools"
        )
    if max_tokens is not None and max_tokens > model.max_output_tokens:
        limit = model.max_output_tokens
        raise validation(
            f"The maximum tokens you requested exceeds the model limit of {limit}. "
            f"Try again with a maximum tokens value that is lower than {limit}."
        )
    if len(walk.cache_points) > MAX_CACHE_POINTS:
        raise validation(
            "The model returned the following errors: A maximum of 4 blocks with cache_control "
            f"may be provided. Found {len(walk.cache_points)}."
        )
    input_tokens = walk.tokens + tok.GENERATION_PROMPT_TOKENS
    if input_tokens > model.context_window:
        raise validation(INPUT_TOO_LONG)

    seed = request_seed(
        model_key,
        canonical_json(
            [data.get("system"), data.get("messages"), data.get("toolConfig"), temperature, top_p]
        ),
    )
    last = turns[-1]
    echo = {
        k: data[k] for k in ("performanceConfig", "serviceTier") if isinstance(data.get(k), dict)
    }
    return ConverseRequest(
        seed=seed,
        input_tokens=input_tokens,
        max_tokens=max_tokens,
        stop_sequences=tuple(stops),
        tools=tools,
        tool_choice=choice,
        tool_choice_name=choice_name,
        answers_tool_result=last.role == "user" and bool(last.tool_result_ids),
        last_user_text=last.text if last.role == "user" else "",
        cache_points=walk.cache_points,
        echo=echo,
    )


# ------------------------------------------------------------------------ titan embedding


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    text: str
    dimensions: int
    normalize: bool
    types: tuple[str, ...]


_TITAN_KEYS = ("inputText", "dimensions", "normalize", "embeddingTypes")
_JSON_TYPE_NAMES = {
    "string": "String",
    "number": "Number",
    "boolean": "Boolean",
    "array": "JSONArray",
    "object": "JSONObject",
    "null": "Null",
}


def _malformed(violations: list[str]) -> BedrockError:
    count = len(violations)
    detail = violations[0] if count == 1 else f"{count} schema violations found"
    return validation(
        f"Malformed input request: {detail}, please reformat your input and try again."
    )


def parse_titan_embedding(raw: bytes, model: ModelSpec) -> EmbeddingRequest:
    """Validate a Titan Text Embeddings V2 InvokeModel body (JSON-schema style messages)."""
    try:
        data = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        found = _JSON_TYPE_NAMES[_json_type(data)]
        raise _malformed([f"#: expected type: JSONObject, found: {found}"])
    problems: list[str] = []
    for key in data:
        if key not in _TITAN_KEYS:
            problems.append(f"#: extraneous key [{key}] is not permitted")
    text = data.get("inputText")
    if "inputText" not in data:
        problems.append("#: required key [inputText] not found")
    elif not isinstance(text, str):
        problems.append(
            f"#/inputText: expected type: String, found: {_JSON_TYPE_NAMES[_json_type(text)]}"
        )
    elif not text:
        problems.append("#/inputText: expected minLength: 1, actual: 0")
    dims = data.get("dimensions", model.embedding_dimensions[0])
    if "dimensions" in data and (isinstance(dims, bool) or not isinstance(dims, int)):
        problems.append(
            f"#/dimensions: expected type: Integer, found: {_JSON_TYPE_NAMES[_json_type(dims)]}"
        )
    elif dims not in model.embedding_dimensions:
        problems.append(f"#/dimensions: {dims} is not a valid enum value")
    normalize = data.get("normalize", True)
    if not isinstance(normalize, bool):
        problems.append(
            f"#/normalize: expected type: Boolean, found: {_JSON_TYPE_NAMES[_json_type(normalize)]}"
        )
    types = data.get("embeddingTypes", ["float"])
    if not isinstance(types, list):
        problems.append(
            "#/embeddingTypes: expected type: JSONArray, found: "
            + _JSON_TYPE_NAMES[_json_type(types)]
        )
    else:
        if not types:
            problems.append("#/embeddingTypes: expected minimum item count: 1, found: 0")
        for i, kind in enumerate(types):
            if kind not in ("float", "binary"):
                problems.append(f"#/embeddingTypes/{i}: {kind} is not a valid enum value")
    if problems:
        raise _malformed(problems)
    assert isinstance(text, str) and isinstance(dims, int) and isinstance(types, list)
    tokens = tok.count_tokens(text)
    if tokens > model.context_window:
        raise validation(
            f"400 Bad Request: Too many input tokens. Max input tokens: {model.context_window}, "
            f"request input token count: {tokens}"
        )
    return EmbeddingRequest(text, dims, bool(normalize), tuple(dict.fromkeys(types)))
