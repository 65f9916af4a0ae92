"""OpenAI chat request → Bedrock Converse request: the translation table.

Every produced request is also checked against botocore's ``ConverseRequest`` input shape,
so a rule that emitted a field Bedrock does not know (or of the wrong type) would fail here.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import orjson
import pytest
from botocore.validate import ParamValidator

from fulcrum.api.errors import ApiError
from fulcrum.providers.bedrock.translate import chat_to_converse
from tests.unit.providers.bedrock._service import operation, sdk_request

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(32))).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(range(40))).decode()

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
WEATHER_SPEC = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "inputSchema": {
            "json": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            }
        },
    }
}
TIME_SPEC = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


HI = {"role": "user", "content": [{"text": "hi"}]}
ASSISTANT_CALLS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        call("call_1", "get_weather", '{"city": "Paris"}'),
        call("call_2", "get_time", '{"tz": "Europe/Paris", "24h": true, "n": [1, 2]}'),
    ],
}
TOOL_USES = {
    "role": "assistant",
    "content": [
        {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
        {
            "toolUse": {
                "toolUseId": "call_2",
                "name": "get_time",
                "input": {"tz": "Europe/Paris", "24h": True, "n": [1, 2]},
            }
        },
    ],
}
RESULT_1 = {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C, sunny"}]}}
RESULT_2 = {"toolResult": {"toolUseId": "call_2", "content": [{"text": "14:05"}]}}


def with_tools(body: dict[str, Any]) -> dict[str, Any]:
    return {"tools": [WEATHER_TOOL, TIME_TOOL], **body}


TOOL_CONFIG_AUTO = {"tools": [WEATHER_SPEC, TIME_SPEC], "toolChoice": {"auto": {}}}

# (id, OpenAI body, passthrough, the exact Converse request expected)
CASES: list[tuple[str, dict[str, Any], tuple[str, ...], dict[str, Any]]] = [
    (
        "plain-user-string",
        {"model": "m", "messages": [user("hi")]},
        (),
        {"messages": [HI]},
    ),
    (
        "system-and-developer-to-system",
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
                user("hi"),
            ]
        },
        (),
        {"system": [{"text": "Be brief."}, {"text": "Use metric."}], "messages": [HI]},
    ),
    (
        "system-in-the-middle-still-system",
        {
            "messages": [
                user("hi"),
                {"role": "system", "content": "Answer in French."},
                user("again"),
            ]
        },
        (),
        {
            "system": [{"text": "Answer in French."}],
            "messages": [{"role": "user", "content": [{"text": "hi"}, {"text": "again"}]}],
        },
    ),
    (
        "user-user-merged",
        {"messages": [user("one"), user([{"type": "text", "text": "two"}])]},
        (),
        {"messages": [{"role": "user", "content": [{"text": "one"}, {"text": "two"}]}]},
    ),
    (
        "alternating-turns-kept",
        {
            "messages": [
                user("q1"),
                {"role": "assistant", "content": "a1"},
                {"role": "assistant", "content": "a1 bis"},
                user("q2"),
            ]
        },
        (),
        {
            "messages": [
                {"role": "user", "content": [{"text": "q1"}]},
                {"role": "assistant", "content": [{"text": "a1"}, {"text": "a1 bis"}]},
                {"role": "user", "content": [{"text": "q2"}]},
            ]
        },
    ),
    (
        "assistant-tool-calls-and-tool-tool-merged",
        with_tools(
            {
                "messages": [
                    user("weather and time?"),
                    ASSISTANT_CALLS,
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                    {
                        "role": "tool",
                        "tool_call_id": "call_2",
                        "content": [{"type": "text", "text": "14:05"}],
                    },
                ]
            }
        ),
        (),
        {
            "messages": [
                {"role": "user", "content": [{"text": "weather and time?"}]},
                TOOL_USES,
                {"role": "user", "content": [RESULT_1, RESULT_2]},
            ],
            "toolConfig": TOOL_CONFIG_AUTO,
        },
    ),
    (
        "tool-then-user-merged",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": ASSISTANT_CALLS["tool_calls"][:1],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                    user("and in Celsius?"),
                ]
            }
        ),
        (),
        {
            "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {"role": "assistant", "content": TOOL_USES["content"][:1]},
                {"role": "user", "content": [RESULT_1, {"text": "and in Celsius?"}]},
            ],
            "toolConfig": TOOL_CONFIG_AUTO,
        },
    ),
    (
        "user-then-tool-merged",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": "Checking.",
                        "tool_calls": ASSISTANT_CALLS["tool_calls"][:1],
                    },
                    user("hurry"),
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
                ]
            }
        ),
        (),
        {
            "messages": [
                {"role": "user", "content": [{"text": "weather?"}]},
                {
                    "role": "assistant",
                    "content": [{"text": "Checking."}, *TOOL_USES["content"][:1]],
                },
                {"role": "user", "content": [{"text": "hurry"}, RESULT_1]},
            ],
            "toolConfig": TOOL_CONFIG_AUTO,
        },
    ),
    (
        "empty-tool-arguments-become-empty-object",
        with_tools(
            {
                "messages": [
                    user("time?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [call("c9", "get_time", "")],
                    },
                    {"role": "tool", "tool_call_id": "c9", "content": ""},
                ]
            }
        ),
        (),
        {
            "messages": [
                {"role": "user", "content": [{"text": "time?"}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "c9", "name": "get_time", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "c9", "content": [{"text": ""}]}}],
                },
            ],
            "toolConfig": TOOL_CONFIG_AUTO,
        },
    ),
    (
        "tools-default-choice-auto",
        with_tools({"messages": [user("hi")]}),
        (),
        {"messages": [HI], "toolConfig": TOOL_CONFIG_AUTO},
    ),
    (
        "tool-choice-auto",
        with_tools({"messages": [user("hi")], "tool_choice": "auto"}),
        (),
        {"messages": [HI], "toolConfig": TOOL_CONFIG_AUTO},
    ),
    (
        "tool-choice-required-is-any",
        with_tools({"messages": [user("hi")], "tool_choice": "required"}),
        (),
        {
            "messages": [HI],
            "toolConfig": {"tools": [WEATHER_SPEC, TIME_SPEC], "toolChoice": {"any": {}}},
        },
    ),
    (
        "tool-choice-named-is-tool",
        with_tools(
            {
                "messages": [user("hi")],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            }
        ),
        (),
        {
            "messages": [HI],
            "toolConfig": {
                "tools": [WEATHER_SPEC, TIME_SPEC],
                "toolChoice": {"tool": {"name": "get_time"}},
            },
        },
    ),
    (
        "tool-choice-none-without-history-drops-tools",
        with_tools({"messages": [user("hi")], "tool_choice": "none"}),
        (),
        {"messages": [HI]},
    ),
    (
        "max-tokens",
        {"messages": [user("hi")], "max_tokens": 100},
        (),
        {"messages": [HI], "inferenceConfig": {"maxTokens": 100}},
    ),
    (
        "max-completion-tokens",
        {"messages": [user("hi")], "max_completion_tokens": 64},
        (),
        {"messages": [HI], "inferenceConfig": {"maxTokens": 64}},
    ),
    (
        "max-completion-tokens-wins",
        {"messages": [user("hi")], "max_tokens": 100, "max_completion_tokens": 64},
        (),
        {"messages": [HI], "inferenceConfig": {"maxTokens": 64}},
    ),
    (
        "temperature-top-p",
        {"messages": [user("hi")], "temperature": 0.2, "top_p": 0.9},
        (),
        {"messages": [HI], "inferenceConfig": {"temperature": 0.2, "topP": 0.9}},
    ),
    (
        "temperature-zero-kept",
        {"messages": [user("hi")], "temperature": 0},
        (),
        {"messages": [HI], "inferenceConfig": {"temperature": 0}},
    ),
    (
        "stop-string",
        {"messages": [user("hi")], "stop": "END"},
        (),
        {"messages": [HI], "inferenceConfig": {"stopSequences": ["END"]}},
    ),
    (
        "stop-list",
        {"messages": [user("hi")], "stop": ["END", "\n\n"]},
        (),
        {"messages": [HI], "inferenceConfig": {"stopSequences": ["END", "\n\n"]}},
    ),
    (
        "neutral-values-accepted",
        {
            "messages": [user("hi")],
            "n": 1,
            "logprobs": False,
            "response_format": {"type": "text"},
            "parallel_tool_calls": True,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        (),
        {"messages": [HI]},
    ),
    (
        "passthrough-to-additional-fields",
        {"messages": [user("hi")], "top_k": 40},
        ("top_k",),
        {"messages": [HI], "additionalModelRequestFields": {"top_k": 40}},
    ),
    (
        "passthrough-listed-but-absent",
        {"messages": [user("hi")]},
        ("top_k",),
        {"messages": [HI]},
    ),
    (
        "user-to-request-metadata",
        {"messages": [user("hi")], "user": "tenant-42"},
        (),
        {"messages": [HI], "requestMetadata": {"user": "tenant-42"}},
    ),
]


def _boto_params(request: dict[str, Any]) -> dict[str, Any]:
    """The request as boto3 would take it: blobs as bytes (our wire JSON carries base64)."""
    params = copy.deepcopy(request)
    for message in params["messages"]:
        for block in message["content"]:
            if "image" in block:
                source = block["image"]["source"]
                source["bytes"] = base64.b64decode(source["bytes"], validate=True)
    return {**params, "modelId": "m"}


def assert_valid_converse(request: dict[str, Any]) -> None:
    """Valid for botocore's ConverseRequest shape, and the same JSON the AWS SDK would send."""
    params = _boto_params(request)
    report = ParamValidator().validate(params, operation("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()
    wire = sdk_request("Converse", params)
    assert wire["url_path"] == "/model/m/converse"
    assert orjson.loads(wire["body"]) == orjson.loads(orjson.dumps(request))


@pytest.mark.parametrize(
    ("body", "passthrough", "expected"),
    [
        pytest.param(body, passthrough, expected, id=name)
        for name, body, passthrough, expected in CASES
    ],
)
def test_chat_to_converse(
    body: dict[str, Any], passthrough: tuple[str, ...], expected: dict[str, Any]
) -> None:
    original = copy.deepcopy(body)
    request = chat_to_converse(body, passthrough)
    assert request == expected
    assert body == original  # pure: the client's body is not modified
    assert_valid_converse(request)


@pytest.mark.parametrize(
    ("mime", "payload", "expected_format"),
    [
        pytest.param("png", PNG, "png", id="png"),
        pytest.param("jpeg", JPEG, "jpeg", id="jpeg"),
        pytest.param("jpg", JPEG, "jpeg", id="jpg-is-jpeg"),
        pytest.param("webp", PNG, "webp", id="webp"),
        pytest.param("gif", PNG, "gif", id="gif"),
        pytest.param("PNG", PNG, "png", id="upper-case-subtype"),
    ],
)
def test_image_data_url_becomes_image_block(mime: str, payload: str, expected_format: str) -> None:
    body = {
        "messages": [
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    image_part(f"data:image/{mime};base64,{payload}"),
                ]
            )
        ]
    }
    request = chat_to_converse(body)
    assert request["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "What is this?"},
                {"image": {"format": expected_format, "source": {"bytes": payload}}},
            ],
        }
    ]
    assert_valid_converse(request)


def test_image_url_given_as_a_bare_string_is_accepted() -> None:
    part = {"type": "image_url", "image_url": f"data:image/png;base64,{PNG}"}
    request = chat_to_converse({"messages": [user([part])]})
    assert request["messages"][0]["content"] == [
        {"image": {"format": "png", "source": {"bytes": PNG}}}
    ]


def _error(body: dict[str, Any], passthrough: tuple[str, ...] = ()) -> ApiError:
    with pytest.raises(ApiError) as info:
        chat_to_converse(body, passthrough)
    assert info.value.status == 400
    return info.value


# (id, body, the param the 400 names)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    (
        "http-image-url",
        {
            "messages": [
                user([{"type": "text", "text": "see"}, image_part("https://example.com/cat.png")])
            ]
        },
        "messages[0].content[1]",
    ),
    (
        "unsupported-image-format",
        {"messages": [user([image_part(f"data:image/bmp;base64,{PNG}")])]},
        "messages[0].content[0]",
    ),
    (
        "non-base64-data-url",
        {"messages": [user([image_part("data:image/png,rawbytes")])]},
        "messages[0].content[0]",
    ),
    (
        "unknown-content-part",
        {"messages": [user([{"type": "input_audio", "input_audio": {"data": "x"}}])]},
        "messages[0].content[0]",
    ),
    (
        "tool-choice-none-with-tool-history",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": ASSISTANT_CALLS["tool_calls"][:1],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                ],
                "tool_choice": "none",
            }
        ),
        "tool_choice",
    ),
    (
        "tool-history-without-tools",
        {
            "messages": [
                user("weather?"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": ASSISTANT_CALLS["tool_calls"][:1],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            ]
        },
        "tools",
    ),
    (
        "tool-choice-required-without-tools",
        {"messages": [user("hi")], "tool_choice": "required"},
        "tool_choice",
    ),
    (
        "invalid-json-arguments",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [call("c1", "get_weather", "{city: Paris")],
                    },
                ]
            }
        ),
        "messages[1].tool_calls[0]",
    ),
    (
        "non-object-json-arguments",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [call("c1", "get_weather", '["Paris"]')],
                    },
                ]
            }
        ),
        "messages[1].tool_calls[0]",
    ),
    (
        "tool-call-without-id",
        with_tools(
            {
                "messages": [
                    user("weather?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            }
                        ],
                    },
                ]
            }
        ),
        "messages[1].tool_calls[0]",
    ),
    (
        "tool-message-without-tool-call-id",
        with_tools({"messages": [user("x"), {"role": "tool", "content": "18C"}]}),
        "messages[1].tool_call_id",
    ),
    (
        "unknown-role",
        {"messages": [user("x"), {"role": "function", "name": "f", "content": "y"}]},
        "messages[1].role",
    ),
    (
        "only-a-system-message",
        {"messages": [{"role": "system", "content": "You are helpful."}]},
        "messages",
    ),
    (
        "non-function-tool",
        {"messages": [user("hi")], "tools": [{"type": "code_interpreter"}]},
        "tools[0]",
    ),
]


@pytest.mark.parametrize(
    ("body", "param"), [pytest.param(body, param, id=name) for name, body, param in REJECTED]
)
def test_rejected_with_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    assert _error(body).param == param


UNSUPPORTED: list[tuple[str, Any]] = [
    ("seed", 7),
    ("logprobs", True),
    ("n", 2),
    ("presence_penalty", 0.5),
    ("frequency_penalty", -1.0),
    ("response_format", {"type": "json_object"}),
    ("logit_bias", {"50256": -100}),
    ("top_logprobs", 3),
    ("top_k", 40),  # not in the deployment's passthrough list
]


@pytest.mark.parametrize(
    ("key", "value"), [pytest.param(key, value, id=key) for key, value in UNSUPPORTED]
)
def test_unsupported_parameter_rejected_by_name(key: str, value: Any) -> None:
    error = _error({"messages": [user("hi")], key: value})
    assert error.code == "unsupported_parameter"
    assert error.param == key
    assert re.search(rf"\b{key}\b", error.message), error.message


def test_all_unsupported_parameters_are_named_in_one_error() -> None:
    body = {"messages": [user("hi")], "top_k": 40}
    names = ["seed", "logprobs", "n", "presence_penalty", "response_format", "logit_bias"]
    body.update(
        seed=1,
        logprobs=True,
        n=2,
        presence_penalty=0.5,
        response_format={"type": "json_object"},
        logit_bias={"1": 5},
    )
    error = _error(body, passthrough=("top_k",))
    assert error.code == "unsupported_parameter"
    for name in names:
        assert re.search(rf"\b{name}\b", error.message), (name, error.message)
    assert "top_k" not in error.message  # passed through, not rejected


_METADATA = operation("Converse").input_shape.members["requestMetadata"]


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param("tenant-42", id="plain"),
        pytest.param("alice@example.com", id="email"),
        pytest.param("auth0|5f7c8ec7c33c6c004bbafe82", id="auth0-subject"),
        pytest.param("José Müller", id="non-ascii"),
        pytest.param("u" * 300, id="longer-than-256"),
    ],
)
def test_request_metadata_user_is_acceptable_to_bedrock(user_id: str) -> None:
    """OpenAI accepts any ``user`` string; Bedrock's requestMetadata values are constrained.

    The service model gives the value a length (0-256) and a character pattern: a ``user`` the
    client may legitimately send must not turn into a request Bedrock rejects.
    """
    request = chat_to_converse({"messages": [user("hi")], "user": user_id})
    metadata = request.get("requestMetadata", {})
    for key, value in metadata.items():
        key_rules, value_rules = _METADATA.key.metadata, _METADATA.value.metadata
        assert key_rules["min"] <= len(key) <= key_rules["max"]
        assert re.fullmatch(key_rules["pattern"], key), key
        assert value_rules["min"] <= len(value) <= value_rules["max"], len(value)
        assert re.fullmatch(value_rules["pattern"], value), value
