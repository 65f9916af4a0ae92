"""Outage bookkeeping for a remote backend: fail fast while it is down, probe it now and then.

The same policy as the rate limiter's Redis handling (``fulcrum.limits.limiter``): after a
failure, calls are skipped (not attempted) until ``retry_interval`` has passed; then one call
goes through as a probe. The first failure of an outage is logged as a warning and the
recovery as info, so a long outage is two log lines, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Outage:
    """Whether a backend is up, and when it may be tried again."""

    def __init__(
        self,
        what: str,
        retry_interval: float,
        log: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.what = what
        self.retry_interval = retry_interval
        self._log = log
        self._clock = clock
        self._on_change = on_change
        self.up = True
        self._retry_at = 0.0

    def may_try(self) -> bool:
        """True when a call should be attempted; while down, True once per retry_interval."""
        if self.up:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.retry_interval  # one probe at a time
        return True

    def failed(self, error: BaseException) -> None:
        self._retry_at = self._clock() + self.retry_interval
        if self.up:
            self.up = False
            self._log.warning(
                "%s is unreachable (%s: %s); bypassing it until it answers",
                self.what,
                type(error).__name__,
                error,
            )
            if self._on_change is not None:
                self._on_change(False)

    def succeeded(self) -> None:
        if not self.up:
            self.up = True
            self._log.info("%s answers again", self.what)
            if self._on_change is not None:
                self._on_change(True)
