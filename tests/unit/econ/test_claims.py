"""Stated figures are recomputed from the scenario; the arithmetic is shown."""

from __future__ import annotations

import pytest

from fulcrum.econ.claims import check, parse_claims
from fulcrum.errors import UserError

SCENARIO = {"hours_per_month": 730, "self_hosted": {"hourly_price": 5.67, "utilization": 0.6}}


def run(*claims: dict[str, object]) -> list[dict[str, object]]:
    return check(SCENARIO, parse_claims({"claims": list(claims)}, "claims.yaml"))


def test_a_month_of_720_hours_does_not_follow_from_730() -> None:
    (result,) = run({"id": "m", "quantity": "instance_monthly", "stated": 4082, "tolerance": 0.005})
    # 5.67 x 730 = 4,139.10; 4,082 is 5.67 x 720
    assert result["computed"] == pytest.approx(4139.1)
    assert result["follows"] is False
    assert result["arithmetic"] == "5.67 x 730 h = 4,139.10"
    assert result["deviation"] == pytest.approx(4139.1 / 4082 - 1)


def test_capacity_and_instance_count() -> None:
    capacity, instances = run(
        {"id": "c", "quantity": "capacity_tokens_per_instance", "stated": 3.1536e9},
        {
            "id": "n",
            "quantity": "self_instances",
            "volume_tokens": 1e10,
            "stated": 2,
            "tolerance": 0,
        },
    )
    # 2000 x 0.6 x 3600 x 730 = 3,153,600,000
    assert capacity["follows"] is True
    assert "2,000 tokens/s x 0.6 x 3600 s/h x 730 h = 3,153,600,000" in capacity["arithmetic"]
    # 1e10 / 3.1536e9 = 3.17 -> 4 instances, not 2
    assert instances["computed"] == 4 and instances["follows"] is False


def test_where_overrides_and_ranges() -> None:
    reserved, never = run(
        {
            "id": "r",
            "quantity": "instance_monthly",
            "where": {"self_hosted": {"pricing": "reserved"}},
            "stated": 2483.46,
        },
        {"id": "b", "quantity": "break_even_first", "stated_range": [3e9, None]},
    )
    # 5.67 x (1 - 0.4) x 730 = 2,483.46
    assert reserved["follows"] is True
    assert reserved["arithmetic"] == "5.67 x (1 - 0.4) x 730 h = 2,483.46"
    # on-demand at 60 %: never breaks even, which is above any lower bound
    assert never["computed"] is None and never["follows"] is True


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ({"id": "x", "quantity": "api_monthly", "stated": 1}, "needs volume_tokens"),
        ({"id": "x", "quantity": "nonsense", "stated": 1}, "claims.0.quantity"),
        ({"id": "x", "quantity": "api_per_1k"}, "give exactly one of stated"),
        ({"id": "x", "quantity": "api_per_1k", "stated": 1, "oops": 1}, "claims.0.oops: unknown"),
    ],
)
def test_bad_claims_are_one_line(claim: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_claims({"claims": [claim]}, "claims.yaml")


def test_bad_override_names_the_claim() -> None:
    claims = parse_claims(
        {"claims": [{"id": "x", "quantity": "api_per_1k", "stated": 1, "where": {"bogus": 1}}]},
        "c.yaml",
    )
    with pytest.raises(UserError, match=r"claims.0.where: bogus: unknown key"):
        check(SCENARIO, claims)
