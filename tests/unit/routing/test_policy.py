"""Residency as a pure function: every place a deployment may run must be allowed."""

from __future__ import annotations

import pytest

from fulcrum.config import DataPolicy
from fulcrum.routing.policy import Boundary, permitted, prefer_workload

SP = ("sa-east-1",)


@pytest.mark.parametrize(
    ("policy", "boundary", "allowed"),
    [
        (DataPolicy(), Boundary((), in_vpc=False), True),
        (DataPolicy(vpc_only=True), Boundary(SP, in_vpc=False), False),
        (DataPolicy(vpc_only=True), Boundary(SP, in_vpc=True), True),
        (DataPolicy(allowed_regions=SP), Boundary(SP, in_vpc=False), True),
        (DataPolicy(allowed_regions=SP), Boundary((), in_vpc=True), False),  # unknown region
        (DataPolicy(allowed_regions=SP), Boundary(("*",), in_vpc=False), False),  # global.
        (
            DataPolicy(allowed_regions=("us-east-1",)),
            Boundary(("us-east-1", "us-west-2"), False),
            False,
        ),
        (
            DataPolicy(allowed_regions=("us-east-1", "us-west-2")),
            Boundary(("us-west-2",), False),
            True,
        ),
        (DataPolicy(allowed_regions=("*",)), Boundary(("*",), in_vpc=False), True),
        (DataPolicy(allowed_regions=SP, vpc_only=True), Boundary(SP, in_vpc=False), False),
    ],
)
def test_permitted(policy: DataPolicy, boundary: Boundary, allowed: bool) -> None:
    assert permitted(policy, boundary) is allowed


def test_prefer_workload_keeps_only_available_names() -> None:
    assert prefer_workload(["a", "b", "c"], ["c", "x"]) == (["c", "a", "b"], 1)
    assert prefer_workload(["a", "b"], []) == (["a", "b"], 2)
