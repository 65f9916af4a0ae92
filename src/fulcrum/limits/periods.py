"""UTC budget periods (day, month) of an instant: the memory backend's twin of the Lua code.

The Redis script derives the same values from the Redis server's clock; both must agree, which
the unit tests check against :mod:`datetime` on calendar edges (month ends, leap days).
"""

from __future__ import annotations

from datetime import date, timedelta

from fulcrum.limits.checks import Periods

DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)


def periods_at(now_ms: int) -> Periods:
    """The UTC day and month containing ``now_ms`` and the instants they end."""
    days = now_ms // DAY_MS  # integer arithmetic: no float rounding at midnight
    today = _EPOCH + timedelta(days=days)
    if today.month == 12:
        next_month = date(today.year + 1, 1, 1)
    else:
        next_month = date(today.year, today.month + 1, 1)
    return Periods(
        day=today.year * 10_000 + today.month * 100 + today.day,
        month=today.year * 100 + today.month,
        day_end_ms=(days + 1) * DAY_MS,
        month_end_ms=(next_month - _EPOCH).days * DAY_MS,
    )
