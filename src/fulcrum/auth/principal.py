"""Who is calling: the result of authentication, read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its tenant, the credential's subject, and its scopes."""

    tenant: str
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)


ANONYMOUS = Principal(tenant="default", subject="anonymous")
