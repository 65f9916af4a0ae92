"""Durations (``30d``, ``12h``) and expiry times as operators type them on the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fulcrum.errors import UserError

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DURATION_HELP = "a number with a unit: 90s, 30m, 12h, 30d, 2w"


def parse_duration(text: str, option: str) -> timedelta:
    """``0`` or ``<n><unit>``; a ``UserError`` naming ``option`` otherwise."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    match = _DURATION.match(value)
    if match is None:
        raise UserError(f"{option}: invalid duration {text!r} (use {DURATION_HELP})")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise UserError(f"{option}: duration {text!r} is too long") from None


def parse_expiry(text: str, now: datetime, option: str = "--expires") -> datetime:
    """A duration from now, a date (midnight UTC) or an ISO-8601 time; must be in the future."""
    value = text.strip()
    if _DURATION.match(value):
        return now + parse_duration(value, option)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(
            f"{option}: invalid time {text!r} (use a duration like 30d or 12h, a date like "
            "2027-01-31, or an ISO-8601 time like 2027-01-31T12:00:00Z)"
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise UserError(f"{option}: {text!r} is not in the future")
    return when


def format_time(value: datetime | None, never: str = "never") -> str:
    """Second precision, UTC, ``Z`` suffix: what the CLI prints."""
    if value is None:
        return never
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
