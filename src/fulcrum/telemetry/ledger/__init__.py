"""The usage ledger: hourly usage per tenant x model alias x deployment x backend x workload.

The gateway builds one ``LedgerWriter(store)``, calls ``start()``, hands every finished
request to ``record(UsageEvent(...))`` (synchronous, in memory) and ``await stop()`` at
shutdown; batches reach the store (SQLite or PostgreSQL, table ``usage_ledger``) every few
seconds. ``usage_rows`` serves ``fulcrum usage``; ``hourly_volume`` serves the decision engine.
"""

from fulcrum.telemetry.ledger.query import GROUPS, UsageRow, hourly_volume, usage_rows
from fulcrum.telemetry.ledger.record import BACKENDS, Backend, UsageEvent, backend_of
from fulcrum.telemetry.ledger.writer import LedgerStats, LedgerWriter

__all__ = [
    "BACKENDS",
    "GROUPS",
    "Backend",
    "LedgerStats",
    "LedgerWriter",
    "UsageEvent",
    "UsageRow",
    "backend_of",
    "hourly_volume",
    "usage_rows",
]
