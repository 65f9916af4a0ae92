"""From a Principal's policy and a model alias to the checks one request must pass."""

from __future__ import annotations

import math

from fulcrum.auth.principal import Principal
from fulcrum.config import RateLimits
from fulcrum.limits.checks import MICROS_PER_USD, BudgetCheck, Plan, ScopeCheck, ScopeKind, escape


def micros(usd: float | None) -> int | None:
    """USD as integer micro-dollars (budgets: nearest; None stays None)."""
    return None if usd is None else round(usd * MICROS_PER_USD)


def micros_estimate(usd: float) -> int:
    """An estimated cost in micro-dollars, rounded up: a reservation never under-counts."""
    return max(0, math.ceil(usd * MICROS_PER_USD - 1e-6))


def _scope(kind: ScopeKind, name: str, key: str, limits: RateLimits) -> ScopeCheck:
    return ScopeCheck(kind, name, key, limits.rpm, limits.tpm, limits.concurrency)


def build_plan(principal: Principal, model: str) -> Plan:
    """The tenant, its key (when the credential is a key), tenant-and-model, and the budget."""
    limits = principal.policy.limits
    tag = "{" + escape(principal.tenant) + "}"
    scopes: list[ScopeCheck] = []
    own = limits.rpm is not None or limits.tpm is not None or limits.concurrency is not None
    if own:  # not ``limits.any``: TenantLimits widens that to the nested scopes
        scopes.append(_scope("tenant", principal.tenant, f"{tag}:t", limits))
    if principal.key_id is not None and limits.per_key.any:
        key = f"{tag}:k:{escape(principal.key_id)}"
        scopes.append(_scope("key", principal.key_id, key, limits.per_key))
    per_model = limits.per_model.get(model)
    if per_model is not None and per_model.any:
        scopes.append(_scope("model", model, f"{tag}:m:{escape(model)}", per_model))
    budget = None
    if limits.budget.any:
        daily, monthly = micros(limits.budget.daily_usd), micros(limits.budget.monthly_usd)
        budget = BudgetCheck(f"{tag}:b", daily, monthly)
    return Plan(principal.tenant, tuple(scopes), budget)
