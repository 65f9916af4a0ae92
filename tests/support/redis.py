"""Fixtures for a real redis (see tests/support/services.py for skip/fail rules)."""

from __future__ import annotations
