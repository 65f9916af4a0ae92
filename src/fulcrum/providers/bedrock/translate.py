"""OpenAI chat request → Bedrock Converse request, as pure functions.

No I/O, no clock: every rule here is covered by the table in
``tests/unit/providers/bedrock/test_translate.py``. What Converse cannot express is rejected
with a 400 that names the parameter, unless the deployment lists it in
``additional_request_fields`` (then it travels in ``additionalModelRequestFields``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

from fulcrum.api.errors import bad_request

# Parameters Converse expresses directly, or that are meaningless for it and safe to drop.
_TRANSLATED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
        "stop", "tools", "tool_choice", "stream", "stream_options", "user",
    }
)  # fmt: skip
# Accepted only at their neutral value (anything else changes the output Converse returns).
_NEUTRAL: dict[str, Any] = {
    "n": 1,
    "parallel_tool_calls": True,
    "logprobs": False,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
# requestMetadata values must match [a-zA-Z0-9\s:_@$#=/+,-.]{0,256}; others become "_".
_METADATA_UNSAFE = re.compile(r"[^a-zA-Z0-9\s:_@$#=/+,\-.]")
_DATA_URL = re.compile(r"^data:image/([a-zA-Z0-9.+-]+);base64,(.*)$", re.DOTALL)


def chat_to_converse(body: dict[str, Any], passthrough: Iterable[str] = ()) -> dict[str, Any]:
    """Build the Converse request body (without ``modelId``, which goes in the URL)."""
    extra = _additional_fields(body, frozenset(passthrough))
    system, messages = _messages(body["messages"])
    request: dict[str, Any] = {"messages": messages}
    if system:
        request["system"] = system
    inference = _inference_config(body)
    if inference:
        request["inferenceConfig"] = inference
    tool_config = _tool_config(body, messages)
    if tool_config is not None:
        request["toolConfig"] = tool_config
    if extra:
        request["additionalModelRequestFields"] = extra
    user = body.get("user")
    if isinstance(user, str) and user:
        request["requestMetadata"] = {"user": _METADATA_UNSAFE.sub("_", user)[:256]}
    return request


def _additional_fields(body: dict[str, Any], passthrough: frozenset[str]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    unsupported: list[str] = []
    for key, value in body.items():
        if key in _TRANSLATED:
            continue
        if key in passthrough:
            extra[key] = value
        elif _is_neutral(key, value):
            continue
        elif value is not None:
            unsupported.append(key)
    if unsupported:
        names = ", ".join(sorted(unsupported))
        raise bad_request(
            f"Unsupported parameter(s) for a Bedrock deployment: {names}.",
            param=sorted(unsupported)[0],
            code="unsupported_parameter",
        )
    return extra


def _is_neutral(key: str, value: Any) -> bool:
    """A parameter given at the value that changes nothing (e.g. ``n: 1``)."""
    if key == "response_format":
        return value is None or (isinstance(value, dict) and value.get("type") == "text")
    return key in _NEUTRAL and (value is None or value == _NEUTRAL[key])


def _messages(raw: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System blocks, and user/assistant turns with consecutive same-role turns merged."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(raw):
        role = message["role"]
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _texts(message.get("content"), index))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), index)
            converse_role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message, index)
            converse_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, index)]
            converse_role = "user"
        else:
            raise bad_request(
                f"messages[{index}].role {role!r} is not supported by Bedrock",
                param=f"messages[{index}].role",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == converse_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": converse_role, "content": blocks})
    if not turns:
        raise bad_request("messages must contain at least one user message", param="messages")
    return system, turns


def _texts(content: Any, index: int) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    f"messages[{index}] may only contain text parts",
                    param=f"messages[{index}].content",
                )
            if part.get("text"):
                texts.append(str(part["text"]))
        return texts
    if content is None:
        return []
    raise bad_request(
        f"messages[{index}].content must be a string or an array",
        param=f"messages[{index}].content",
    )


def _user_blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in _texts(content, index)]
    blocks: list[dict[str, Any]] = []
    for part_index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part, f"messages[{index}].content[{part_index}]"))
        else:
            raise bad_request(
                f"messages[{index}].content[{part_index}]: part type {kind!r} is not supported",
                param=f"messages[{index}].content[{part_index}]",
            )
    return blocks


def _image_block(part: dict[str, Any], param: str) -> dict[str, Any]:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise bad_request(
            "Bedrock accepts images only as base64 data URLs (data:image/png;base64,…)",
            param=param,
        )
    image_format = _IMAGE_FORMATS.get(match.group(1).lower())
    if image_format is None:
        raise bad_request(
            f"image format {match.group(1)!r} is not supported (png, jpeg, gif, webp)",
            param=param,
        )
    # Converse's JSON wire format carries blobs as base64: the data URL's payload as is.
    return {"image": {"format": image_format, "source": {"bytes": match.group(2)}}}


def _assistant_blocks(message: dict[str, Any], index: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"text": t} for t in _texts(message.get("content"), index)]
    for call_index, call in enumerate(message.get("tool_calls") or []):
        param = f"messages[{index}].tool_calls[{call_index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
            raise bad_request("a tool call needs an id and a function name", param=param)
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            raise bad_request("tool call arguments must be a JSON object", param=param) from None
        if not isinstance(parsed, dict):
            raise bad_request("tool call arguments must be a JSON object", param=param)
        blocks.append(
            {"toolUse": {"toolUseId": str(call["id"]), "name": function["name"], "input": parsed}}
        )
    return blocks


def _tool_result(message: dict[str, Any], index: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not call_id:
        raise bad_request(
            "a tool message needs tool_call_id", param=f"messages[{index}].tool_call_id"
        )
    texts = _texts(message.get("content"), index)
    return {
        "toolResult": {
            "toolUseId": str(call_id),
            "content": [{"text": text} for text in texts] or [{"text": ""}],
        }
    }


def _inference_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = [str(s) for s in stop]
    return config


def _tool_config(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if not tools:
        if choice not in (None, "none", "auto"):
            raise bad_request("tool_choice needs tools", param="tool_choice")
        if _uses_tools(messages):
            raise bad_request(
                "the conversation contains tool calls: Bedrock needs the 'tools' definitions",
                param="tools",
            )
        return None
    specs = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise bad_request("only function tools are supported", param=f"tools[{index}]")
        spec: dict[str, Any] = {
            "name": function["name"],
            "inputSchema": {"json": function.get("parameters") or {"type": "object"}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": specs}
    if choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "none":
        if _uses_tools(messages):
            raise bad_request(
                "tool_choice 'none' cannot be expressed for Bedrock once tools were used",
                param="tool_choice",
            )
        return None
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    else:
        raise bad_request("tool_choice is not valid", param="tool_choice")
    return config


def _uses_tools(messages: list[dict[str, Any]]) -> bool:
    return any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message["content"]
    )
