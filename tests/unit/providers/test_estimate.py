"""Token estimates for streams that ended before the upstream reported usage."""

from __future__ import annotations

import pytest

from fulcrum.providers.estimate import estimate_prompt_tokens


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": [{"role": "user", "content": "x" * 40}]}, 10 + 4),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 8}]}]},
            2 + 4,
        ),
        ({"prompt": "z" * 12}, 3),
        ({"input": ["a" * 4, "b" * 4]}, 2),
        ({"messages": []}, 0),
    ],
)
def test_estimate_prompt_tokens(body: dict[str, object], expected: int) -> None:
    assert estimate_prompt_tokens(body) == expected
