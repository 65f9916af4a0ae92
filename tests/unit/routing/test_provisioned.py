"""Provisioned Throughput: sliding token window, fill then spill, settling, utilisation."""

from __future__ import annotations

import pytest

from fulcrum.routing.provisioned import ProvisionedCapacity, TokenWindow


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ------------------------------------------------------------------ TokenWindow


def test_window_sums_what_was_added() -> None:
    window = TokenWindow(60.0)
    window.add(100, 0.0)
    window.add(50, 0.5)  # same second: same bucket
    window.add(25, 30.0)
    assert window.used(30.0) == 175


def test_window_forgets_tokens_older_than_the_window() -> None:
    window = TokenWindow(60.0)
    window.add(100, 0.0)
    window.add(10, 30.0)
    assert window.used(59.9) == 110
    assert window.used(60.0) == 10
    assert window.used(89.9) == 10
    assert window.used(90.0) == 0


def test_window_slides_per_bucket() -> None:
    window = TokenWindow(10.0)
    for second in range(10):
        window.add(1, float(second))
    assert window.used(9.5) == 10
    assert window.used(12.0) == 7  # seconds 0, 1 and 2 fell out
    window.add(5, 12.0)
    assert window.used(12.0) == 12


def test_window_takes_corrections_and_never_reports_below_zero() -> None:
    window = TokenWindow(60.0)
    window.add(100, 0.0)
    window.add(-40, 10.0)
    assert window.used(10.0) == 60
    # The +100 expires before the -40 does; the count must not go negative meanwhile.
    assert window.used(65.0) == 0


def test_window_keeps_memory_bounded() -> None:
    window = TokenWindow(60.0)
    for tenth in range(100_000):  # 10 000 s of traffic, ten adds per second
        window.add(1, tenth / 10)
    assert window.used(9_999.9) == 600
    assert len(window._buckets) <= 60


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenWindow(0.0)
    with pytest.raises(ValueError):
        TokenWindow(60.0, resolution=0.0)


# ------------------------------------------------------------------ ProvisionedCapacity


def test_fill_to_headroom_then_spill() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=0.95, clock=FakeClock())
    assert capacity.reserve("pt", 5_000)
    assert capacity.reserve("pt", 4_500)  # 9 500 = exactly 95 % of 10 000
    assert not capacity.reserve("pt", 1)
    assert capacity.utilization("pt") == pytest.approx(0.95)


def test_a_refused_reservation_records_nothing() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("pt", 9_000)
    assert not capacity.reserve("pt", 2_000)
    assert capacity.reserve("pt", 1_000)  # the refused 2 000 did not take any room


def test_headroom_keeps_a_safety_margin() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=0.8, clock=FakeClock())
    assert not capacity.reserve("pt", 8_001)
    assert capacity.reserve("pt", 8_000)


def test_default_headroom_is_95_percent() -> None:
    capacity = ProvisionedCapacity({"pt": 1_000}, clock=FakeClock())
    assert not capacity.reserve("pt", 951)
    assert capacity.reserve("pt", 950)


def test_capacity_frees_as_the_window_slides() -> None:
    clock = FakeClock()
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=1.0, clock=clock)
    assert capacity.reserve("pt", 6_000)
    clock.advance(30.0)
    assert capacity.reserve("pt", 4_000)
    assert not capacity.reserve("pt", 1)
    clock.advance(30.0)  # the first 6 000 are a minute old now
    assert capacity.utilization("pt") == pytest.approx(0.4)
    assert capacity.reserve("pt", 6_000)


def test_settle_gives_back_an_over_estimate() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("pt", 8_000)
    assert not capacity.reserve("pt", 5_000)
    capacity.settle("pt", estimated=8_000, actual=3_000)
    assert capacity.utilization("pt") == pytest.approx(0.3)
    assert capacity.reserve("pt", 5_000)


def test_settle_charges_an_under_estimate() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("pt", 2_000)
    capacity.settle("pt", estimated=2_000, actual=9_000)
    assert capacity.utilization("pt") == pytest.approx(0.9)
    assert not capacity.reserve("pt", 1_500)


def test_settle_to_zero_releases_a_call_that_never_ran() -> None:
    capacity = ProvisionedCapacity({"pt": 10_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("pt", 10_000)
    capacity.settle("pt", estimated=10_000, actual=0)
    assert capacity.utilization("pt") == 0.0


def test_utilization_can_show_an_overshoot() -> None:
    capacity = ProvisionedCapacity({"pt": 1_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("pt", 1_000)
    capacity.settle("pt", estimated=1_000, actual=1_500)
    assert capacity.utilization("pt") == pytest.approx(1.5)


def test_deployments_are_accounted_separately() -> None:
    capacity = ProvisionedCapacity({"a": 1_000, "b": 2_000}, headroom=1.0, clock=FakeClock())
    assert capacity.reserve("a", 1_000)
    assert not capacity.reserve("a", 1)
    assert capacity.reserve("b", 1_000)
    assert capacity.utilization("b") == pytest.approx(0.5)
    assert "a" in capacity
    assert "on-demand" not in capacity
    with pytest.raises(KeyError):
        capacity.reserve("on-demand", 1)


def test_a_shorter_window_scales_the_capacity() -> None:
    clock = FakeClock()
    capacity = ProvisionedCapacity({"pt": 6_000}, headroom=1.0, window=10.0, clock=clock)
    assert not capacity.reserve("pt", 1_001)  # 6 000 per minute is 1 000 per 10 s
    assert capacity.reserve("pt", 1_000)
    clock.advance(10.0)
    assert capacity.reserve("pt", 1_000)


@pytest.mark.parametrize("headroom", [0.0, 1.01])
def test_headroom_must_be_a_fraction(headroom: float) -> None:
    with pytest.raises(ValueError):
        ProvisionedCapacity({"pt": 1_000}, headroom=headroom)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ProvisionedCapacity({"pt": 0})
