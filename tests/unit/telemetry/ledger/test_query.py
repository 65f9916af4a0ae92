"""Grouping buckets into the rows ``fulcrum usage`` prints (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fulcrum.errors import UserError
from fulcrum.telemetry.ledger import latency
from fulcrum.telemetry.ledger.aggregate import BucketKey, Totals
from fulcrum.telemetry.ledger.query import GROUPS, check_by, report_of, summarize

H9 = int(datetime(2026, 3, 1, 9, tzinfo=UTC).timestamp())
H10 = H9 + 3600


def bucket(
    hour: int, tenant: str, model: str, requests: int, samples: list[float]
) -> tuple[BucketKey, Totals]:
    key = BucketKey(hour, tenant, model, "vllm-a", "self_hosted", "interactive")
    totals = Totals(
        requests=requests,
        input_tokens=10 * requests,
        output_tokens=requests,
        cost_nanousd=1_000 * requests,
        latency=latency.histogram_of(samples),
    )
    return key, totals


BUCKETS = [
    bucket(H9, "acme", "chat", 100, [0.1] * 100),
    bucket(H10, "acme", "embed", 10, [5.0] * 10),
    bucket(H9, "globex", "chat", 1, [0.2]),
]


def test_groups_are_summed_and_sorted() -> None:
    rows = summarize(BUCKETS, ["tenant"])
    assert [row.group for row in rows] == [(("tenant", "acme"),), (("tenant", "globex"),)]
    acme = rows[0]
    assert (acme.requests, acme.input_tokens, acme.output_tokens) == (110, 1100, 110)
    assert acme.cost_usd == pytest.approx(110e-6)


def test_percentiles_come_from_the_merged_histogram() -> None:
    # acme: 100 samples of 0.1 s and 10 of 5 s -> p50 0.1 s, p95 5 s (not an average of two p95s)
    acme = summarize(BUCKETS, ["tenant"])[0]
    assert acme.p50_seconds == pytest.approx(0.1, rel=latency.ALPHA)
    assert acme.p95_seconds == pytest.approx(5.0, rel=latency.ALPHA)


def test_group_by_hour_and_model_and_nothing() -> None:
    rows = summarize(BUCKETS, ["hour", "model"])
    assert [dict(row.group) for row in rows] == [
        {"hour": "2026-03-01T09:00:00Z", "model": "chat"},
        {"hour": "2026-03-01T10:00:00Z", "model": "embed"},
    ]
    assert rows[0].requests == 101
    (total,) = summarize(BUCKETS, [])
    assert total.group == () and total.requests == 111


def test_a_report_carries_the_total_with_its_own_percentiles() -> None:
    report = report_of(BUCKETS, ["model"])
    assert [row.requests for row in report.rows] == [101, 10]
    assert report.total.requests == 111
    assert report.total.p95_seconds == pytest.approx(5.0, rel=latency.ALPHA)
    empty = report_of([], ["model"])
    assert empty.rows == [] and empty.total.requests == 0 and empty.total.p50_seconds is None


def test_json_rows_put_the_group_first() -> None:
    row = summarize(BUCKETS, ["tenant", "model"])[0]
    document = row.as_json()
    assert list(document)[:3] == ["tenant", "model", "requests"]
    assert document["p50_seconds"] == round(row.p50_seconds or 0, 6)


def test_every_documented_grouping_works() -> None:
    for name in GROUPS:
        assert summarize(BUCKETS, [name])


@pytest.mark.parametrize(
    ("by", "message"),
    [(["tenant", "colour"], "unknown grouping 'colour'"), (["model", "model"], "named twice")],
)
def test_bad_groupings_are_one_line_errors(by: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_by(by)
