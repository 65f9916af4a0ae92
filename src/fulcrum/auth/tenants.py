"""Tenant policies from the configuration file and from the store, behind one lookup.

The gateway's YAML is the operator's last word: a tenant defined there wins over a stored
policy of the same name. Stored policies are validated when loaded; one that does not
validate (written by an older or newer Fulcrum, or edited by hand) is logged once and
ignored, so a bad row can never take the gateway down or lock a tenant out of its YAML
policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fulcrum.config import TenantConfig, format_validation_error
from fulcrum.errors import ConfigError
from fulcrum.store.base import Store

log = logging.getLogger(__name__)


def validate_policy(raw: Any) -> TenantConfig:
    """A tenant policy from a parsed document; ``ConfigError`` naming the key path."""
    try:
        return TenantConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


class TenantDirectory:
    """A ``PolicySource``: configured tenants first, then a snapshot of the store's."""

    def __init__(self, configured: Mapping[str, TenantConfig], store: Store | None = None) -> None:
        self._configured = dict(configured)
        self._store = store
        self._stored: dict[str, TenantConfig] = {}
        self._reported: set[tuple[str, str]] = set()

    def policy(self, tenant: str) -> TenantConfig | None:
        configured = self._configured.get(tenant)
        return configured if configured is not None else self._stored.get(tenant)

    def knows(self, tenant: str) -> bool:
        """Whether the tenant is defined anywhere (JWTs of unknown tenants may be refused)."""
        return tenant in self._configured or tenant in self._stored

    def names(self) -> list[str]:
        return sorted(self._configured.keys() | self._stored.keys())

    async def reload(self) -> None:
        """Replace the stored snapshot with the store's current policies."""
        if self._store is None:
            return
        self.replace(await self._store.list_tenants())

    def replace(self, stored: Mapping[str, Any]) -> None:
        """Validate and swap in stored policies; invalid ones are skipped (logged once)."""
        valid: dict[str, TenantConfig] = {}
        for name, raw in stored.items():
            try:
                valid[name] = validate_policy(raw)
            except ConfigError as exc:
                self._report_invalid(name, raw, str(exc))
        self._stored = valid

    def _report_invalid(self, name: str, raw: Any, reason: str) -> None:
        fingerprint = (name, json.dumps(raw, sort_keys=True, default=str))
        if fingerprint in self._reported:
            return
        self._reported.add(fingerprint)
        log.error("stored policy of tenant %r is invalid and ignored: %s", name, reason)
