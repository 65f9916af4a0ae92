"""The emulator's configuration, resolved once from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from fulcrum.sim.bedrock.catalog import Catalog, default_catalog

DEFAULT_ACCESS_KEY = "AKIDFULCRUMSIM"
DEFAULT_SECRET_KEY = "fulcrum-sim-secret-access-key-not-a-secret"
DEFAULT_PORT = 8010


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs; immutable so handlers can read it without locks."""

    catalog: Catalog = field(default_factory=default_catalog)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    admin_port: int | None = None
    auth: bool = True
    access_key: str = DEFAULT_ACCESS_KEY
    secret_key: str = DEFAULT_SECRET_KEY
    region: str | None = None
    """When set, SigV4 credential scopes must name this region."""
    api_keys: tuple[str, ...] = ()
    """Bedrock API keys accepted as ``Authorization: Bearer <key>``."""
    speed: float = 1.0
    no_latency: bool = False
    min_output_tokens: int = 16
    max_output_tokens: int = 64
    access_log: bool = False
    tls_cert: str | None = None
    """PEM certificate chain: serve the API over HTTPS (bearer API keys need it with boto3)."""
    tls_key: str | None = None
