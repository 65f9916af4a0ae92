"""Validation shared by the emulators' fault admin APIs (`POST /admin/faults`).

Both emulators take a JSON object of fault fields; every bad field is a ``FaultError`` whose
message names it, so the admin endpoint answers a 400 a tester can act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class FaultError(ValueError):
    """An invalid fault update; the message names the field."""


def fields_of(update: Any, known: Iterable[str]) -> Mapping[str, Any]:
    """The update as a mapping, after rejecting anything that is not a known field."""
    if not isinstance(update, Mapping):
        raise FaultError("the body must be a JSON object")
    names = set(known)
    unknown = sorted(set(update) - names)
    if unknown:
        raise FaultError(
            f"unknown field(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    return update


def number(key: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"{key} must be a number")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise FaultError(f"{key} must be {bound}, got {value}")
    return float(value)


def integer(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{key} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise FaultError(f"{key} must be {bound}, got {value}")
    return value


def flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FaultError(f"{key} must be true or false")
    return value


def text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FaultError(f"{key} must be a non-empty string or null")
    return value
