"""Who is calling: the result of authentication, read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulcrum.config import TenantConfig

UNRESTRICTED = TenantConfig()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its tenant, the credential's subject and scopes, its policy.

    ``key_id`` names the API key (for per-key limits); None for JWTs and anonymous callers.
    ``scopes`` empty means the credential may call every endpoint.
    """

    tenant: str
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    policy: TenantConfig = UNRESTRICTED
    key_id: str | None = None


ANONYMOUS = Principal(tenant="default", subject="anonymous")
