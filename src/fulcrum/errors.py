"""Exceptions shared across modules that are not tied to the HTTP surface."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix (bad flag, bad file): the CLI prints it as one line."""


class ConfigError(UserError):
    """The configuration is invalid; the message names the key and the reason."""


def require(condition: bool, message: str) -> None:
    """Raise a UserError with ``message`` unless ``condition`` holds (CLI flag checks)."""
    if not condition:
        raise UserError(message)
