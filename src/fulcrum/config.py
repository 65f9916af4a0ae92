"""Typed gateway configuration: YAML + `${ENV}` interpolation, validated once at start-up.

A mistake is reported as one line that names the key path and the reason (``ConfigError``),
before anything listens. Everything downstream receives these frozen objects and never reads
raw dictionaries or the environment again.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fulcrum.errors import ConfigError

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """Where and how the HTTP server listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    access_log: bool = False
    shutdown_timeout: float = Field(default=10.0, ge=0)


class Timeouts(_Strict):
    """Upstream timeouts in seconds: connect, time to first token (or response), total."""

    connect: float = Field(default=5.0, gt=0)
    ttft: float = Field(default=60.0, gt=0)
    total: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Timeouts:
        if self.ttft > self.total:
            raise ValueError("ttft must not exceed total")
        return self


class HealthCheck(_Strict):
    """Active health probe of an upstream (vLLM serves `/health`)."""

    enabled: bool = True
    path: str = Field(default="/health", pattern=r"^/")
    interval: float = Field(default=10.0, gt=0)
    timeout: float = Field(default=2.0, gt=0)
    # vLLM's Prometheus endpoint, scraped for least-busy routing and saturation; None: off
    metrics_path: str | None = Field(default="/metrics", pattern=r"^/")
    max_waiting: int | None = Field(default=None, ge=0)  # saturated above this queue length


class DeploymentTags(_Strict):
    """Descriptive facts about a deployment, used by routing and accounting."""

    region: str | None = None
    self_hosted: bool = False
    in_vpc: bool | None = None  # inside the platform's VPC; defaults to self_hosted
    cost_per_1k_input: float = Field(default=0.0, ge=0)
    cost_per_1k_output: float = Field(default=0.0, ge=0)

    @property
    def inside_vpc(self) -> bool:
        return self.self_hosted if self.in_vpc is None else self.in_vpc


Workload = Literal["interactive", "batch"]
WORKLOADS: tuple[Workload, ...] = ("interactive", "batch")


class OpenAIDeployment(_Strict):
    """An OpenAI-compatible upstream: vLLM, or any server speaking the OpenAI API."""

    provider: Literal["openai"]
    base_url: HttpUrl
    model: str = Field(min_length=1)
    api_key: str | None = None
    timeouts: Timeouts = Timeouts()
    health_check: HealthCheck = HealthCheck()
    tags: DeploymentTags = DeploymentTags()
    max_connections: int = Field(default=1000, gt=0)
    # Below vLLM's (uvicorn's) 5 s idle timeout, so a pooled connection is never reused
    # just as the upstream closes it.
    keepalive_timeout: float = Field(default=4.0, gt=0)

    @property
    def base(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://host:8000/v1``."""
        return str(self.base_url).rstrip("/")

    @property
    def regions(self) -> tuple[str, ...]:
        """Where this deployment processes data; unknown (no tags.region) is empty."""
        return (self.tags.region,) if self.tags.region else ()

    @property
    def root(self) -> str:
        """Server root: the base URL without a trailing ``/v1`` (where `/health` lives)."""
        base = self.base
        return base[: -len("/v1")] if base.endswith("/v1") else base


# Where a cross-region inference profile may process data, by its id prefix.
PROFILE_GEOGRAPHIES: dict[str, tuple[str, ...]] = {
    "us": ("us-east-1", "us-east-2", "us-west-1", "us-west-2"),
    "us-gov": ("us-gov-east-1", "us-gov-west-1"),
    "eu": ("eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2",
           "eu-west-1", "eu-west-2", "eu-west-3"),
    "apac": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
             "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-4"),
    "ca": ("ca-central-1", "ca-west-1"),
    "jp": ("ap-northeast-1", "ap-northeast-3"),
    "au": ("ap-southeast-2", "ap-southeast-4"),
    "global": ("*",),
}  # fmt: skip

_PT_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:([a-z0-9-]+):\d{12}:provisioned-model/[A-Za-z0-9]+$")
_PROFILE_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:([a-z0-9-]+):\d{12}:(application-)?inference-profile/(.+)$"
)


class BedrockAuth(_Strict):
    """How to authenticate to Bedrock: SigV4 (botocore's chain or explicit keys) or an API key."""

    type: Literal["sigv4", "api_key"] = "sigv4"
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    api_key: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BedrockAuth:
        if self.type == "api_key" and not self.api_key:
            raise ValueError("type api_key needs 'api_key'")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both 'access_key_id' and 'secret_access_key', or neither")
        return self


class BedrockDeployment(_Strict):
    """An Amazon Bedrock model: foundation model, inference profile or Provisioned Throughput.

    ``model_kind`` is inferred from the id and recorded because routing and residency need
    it: a ``us.`` profile may process data in any of its destination regions.
    """

    provider: Literal["bedrock"]
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    model: str = Field(min_length=1)
    model_kind: Literal["foundation", "inference_profile", "provisioned"] | None = None
    processing_regions: tuple[str, ...] | None = None
    endpoint_url: HttpUrl | None = None
    auth: BedrockAuth = BedrockAuth()
    embeddings: bool = False
    additional_request_fields: tuple[str, ...] = ()
    provisioned_tpm: int | None = Field(default=None, gt=0)  # PT capacity, tokens per minute
    # What Bedrock reserves for a request without max_tokens (the model's maximum output).
    max_output_tokens: int = Field(default=4096, gt=0)
    timeouts: Timeouts = Timeouts()
    tags: DeploymentTags = DeploymentTags()
    max_connections: int = Field(default=1000, gt=0)

    @model_validator(mode="after")
    def _capacity_only_for_pt(self) -> BedrockDeployment:
        if self.provisioned_tpm is not None and self.kind != "provisioned":
            raise ValueError("provisioned_tpm is only for Provisioned Throughput ARNs")
        return self

    @field_validator("model_kind")
    @classmethod
    def _kind_matches_id(cls, kind: str | None, info: ValidationInfo) -> str | None:
        model = info.data.get("model")
        if kind is not None and isinstance(model, str):
            inferred = infer_model_kind(model)
            if kind != inferred:
                raise ValueError(f"model {model!r} looks like a {inferred}, not a {kind}")
        return kind

    @property
    def kind(self) -> str:
        return self.model_kind or infer_model_kind(self.model)

    @property
    def regions(self) -> tuple[str, ...]:
        """Regions where this deployment may process a request's data."""
        if self.processing_regions is not None:
            return self.processing_regions
        if self.kind == "inference_profile":
            arn = _PROFILE_ARN.match(self.model)
            profile_id = arn.group(3) if arn else self.model
            return PROFILE_GEOGRAPHIES.get(profile_id.split(".", 1)[0], ("*",))
        match = _PT_ARN.match(self.model)
        return (match.group(1),) if match else (self.region,)

    @property
    def endpoint(self) -> str:
        if self.endpoint_url is not None:
            return str(self.endpoint_url).rstrip("/")
        return f"https://bedrock-runtime.{self.region}.amazonaws.com"


def infer_model_kind(model: str) -> str:
    """Foundation model id, cross-region inference profile, or Provisioned Throughput ARN."""
    if _PT_ARN.match(model):
        return "provisioned"
    if _PROFILE_ARN.match(model):
        return "inference_profile"
    prefix = model.split(".", 1)[0]
    if prefix in PROFILE_GEOGRAPHIES and "." in model:
        return "inference_profile"
    return "foundation"


Deployment = Annotated[OpenAIDeployment | BedrockDeployment, Field(discriminator="provider")]


class StaticKey(_Strict):
    """One API key given in configuration, in clear (from `${ENV}`) or as its SHA-256."""

    tenant: str = Field(min_length=1)
    key: str | None = Field(default=None, min_length=8)
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    name: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StaticKey:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of 'key' or 'key_sha256'")
        return self

    @property
    def digest(self) -> bytes:
        """SHA-256 of the key: what the authenticator compares."""
        if self.key_sha256 is not None:
            return bytes.fromhex(self.key_sha256)
        assert self.key is not None
        return hashlib.sha256(self.key.encode()).digest()


class BreakerConfig(_Strict):
    """Per-deployment circuit breaker (see routing/breaker.py)."""

    consecutive_failures: int = Field(default=5, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    window: float = Field(default=30.0, gt=0)
    min_requests: int = Field(default=20, ge=1)
    cooldown: float = Field(default=15.0, gt=0)
    half_open_probes: int = Field(default=2, ge=1)
    close_after: int = Field(default=2, ge=1)


class RoutingConfig(_Strict):
    """How a request moves through its plan."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    deadline: float = Field(default=300.0, gt=0)  # no new attempt starts after this many seconds
    unhealthy_cooldown: float = Field(default=10.0, gt=0)
    breaker: BreakerConfig = BreakerConfig()
    recover_after: int = Field(default=2, ge=1)  # good probes before a skipped vLLM is used again
    min_hold: float = Field(default=10.0, ge=0)  # …and at least this many seconds after it failed
    provisioned_headroom: float = Field(default=0.95, gt=0, le=1)


class ModelRoute(_Strict):
    """How one public model name is served: its deployments and the policy that orders them.

    Written either as a plain list (priority order) or as a mapping with a strategy.
    """

    deployments: list[str] = Field(min_length=1)
    strategy: Literal["priority", "weighted", "least_busy", "cost"] = "priority"
    weights: dict[str, float] = Field(default_factory=dict)
    workloads: dict[Workload, list[str]] = Field(default_factory=dict)
    default_workload: Workload = "interactive"

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, value: Any) -> Any:
        return {"deployments": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _consistent(self) -> ModelRoute:
        if len(set(self.deployments)) != len(self.deployments):
            raise ValueError("a deployment is listed twice")
        for name, weight in self.weights.items():
            if name not in self.deployments:
                raise ValueError(f"weights name {name!r}, which is not in deployments")
            if weight < 0:
                raise ValueError(f"weight of {name!r} must not be negative")
        if self.strategy == "weighted" and sum(self.weights.values()) <= 0:
            raise ValueError("strategy 'weighted' needs positive weights")
        for workload, order in self.workloads.items():
            for name in order:
                if name not in self.deployments:
                    raise ValueError(f"workloads.{workload} names {name!r}, not in deployments")
        return self


class DataPolicy(_Strict):
    """Where a tenant's data may be processed: a security property, never a preference."""

    allowed_regions: tuple[str, ...] | None = None
    vpc_only: bool = False

    @property
    def restricted(self) -> bool:
        return self.vpc_only or self.allowed_regions is not None

    def describe(self) -> str:
        parts = []
        if self.vpc_only:
            parts.append("vpc_only")
        if self.allowed_regions is not None:
            parts.append(f"allowed_regions={','.join(self.allowed_regions) or '(none)'}")
        return " ".join(parts) or "unrestricted"


class RateLimits(_Strict):
    """Request, token and concurrency limits of one scope (None: unlimited)."""

    rpm: int | None = Field(default=None, gt=0)  # requests per minute
    tpm: int | None = Field(default=None, gt=0)  # input + output tokens per minute
    concurrency: int | None = Field(default=None, gt=0)  # requests in flight

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None


class Budget(_Strict):
    """Spend ceilings in USD, from the serving deployment's token prices (UTC days/months)."""

    daily_usd: float | None = Field(default=None, gt=0)
    monthly_usd: float | None = Field(default=None, gt=0)

    @property
    def any(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


class TenantLimits(RateLimits):
    """A tenant's limits: its own, each of its keys', each model alias's, and its budget."""

    per_key: RateLimits = RateLimits()
    per_model: dict[str, RateLimits] = Field(default_factory=dict)
    budget: Budget = Budget()

    @property
    def any(self) -> bool:
        return (
            super().any
            or self.per_key.any
            or any(limit.any for limit in self.per_model.values())
            or self.budget.any
        )


class TenantCache(_Strict):
    """Whether the tenant's prompts and answers may be kept in the prompt cache."""

    allowed: bool = True


class TenantAudit(_Strict):
    """Whether the tenant's prompt and response bodies may be written to the audit log."""

    bodies: bool = False


class TenantConfig(_Strict):
    """A tenant's policy: models, residency, workload, limits, what may be stored."""

    models: tuple[str, ...] | None = None  # allowed model aliases; None: every alias
    data_policy: DataPolicy = DataPolicy()
    default_workload: Workload | None = None
    limits: TenantLimits = TenantLimits()
    cache: TenantCache = TenantCache()
    audit: TenantAudit = TenantAudit()

    def allows_model(self, alias: str) -> bool:
        return self.models is None or alias in self.models


SCOPES = ("chat", "completions", "embeddings", "models")
"""What a credential may call; a credential with no scopes may call everything."""

JwtAlgorithm = Literal["RS256", "ES256", "EdDSA"]


class JwtIssuer(_Strict):
    """A trusted token issuer: where its keys are, and how its claims map to a Principal."""

    issuer: str = Field(min_length=1)  # the exact `iss` claim
    jwks_url: HttpUrl
    audience: tuple[str, ...] = Field(min_length=1)  # `aud` must contain one of these
    algorithms: tuple[JwtAlgorithm, ...] = ("RS256", "ES256", "EdDSA")
    leeway: float = Field(default=30.0, ge=0, le=300)  # seconds of clock skew for exp/nbf
    tenant_claim: str = "tenant"  # dotted path, e.g. `org.id`
    subject_claim: str = "sub"
    scopes_claim: str = "scope"  # space-separated string or list
    scope_prefix: str = ""  # e.g. `fulcrum:`: only such scopes count, prefix removed
    known_tenants_only: bool = True  # a tenant not configured (YAML or store) gets 403
    jwks_timeout: float = Field(default=5.0, gt=0)
    jwks_min_refresh: float = Field(default=30.0, ge=0)  # unknown-kid refetches at most this often
    jwks_default_max_age: float = Field(default=300.0, gt=0)  # when the JWKS sends no max-age

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class AuthConfig(_Strict):
    """How callers authenticate: static keys, keys in the store, JWTs; or not at all."""

    enabled: bool = True
    keys: list[StaticKey] = Field(default_factory=list)
    store_keys: bool = True  # accept keys made with `fulcrum keys create`
    refresh_interval: float = Field(default=2.0, gt=0, le=60)  # store poll: revocation latency
    jwt: list[JwtIssuer] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "none":
            return {"enabled": False}
        if isinstance(value, list):
            return {"keys": value}
        return value

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        digests = [entry.digest for entry in self.keys]
        if len(set(digests)) != len(digests):
            raise ValueError("the same key is listed twice")
        issuers = [entry.issuer for entry in self.jwt]
        if len(set(issuers)) != len(issuers):
            raise ValueError("the same issuer is listed twice")
        return self


class StoreConfig(_Strict):
    """The gateway's database (keys, tenants, usage): SQLite by default, or PostgreSQL.

    ``sqlite:///relative.db`` is resolved against the configuration file's directory.
    """

    url: str = "sqlite:///fulcrum.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not re.match(r"^(sqlite:///.+|postgres(ql)?://.*)$", url):
            raise ValueError("must be sqlite:///PATH or postgresql://[user@]host[:port]/db")
        return url


class LedgerConfig(_Strict):
    """The usage ledger in the store: hourly aggregates written off the hot path."""

    enabled: bool = True
    flush_interval: float = Field(default=5.0, gt=0)  # seconds between batched writes
    max_pending: int = Field(default=20_000, gt=0)  # hourly buckets held while the store is down


class RedisConfig(_Strict):
    """The Redis shared by replicas: rate limits and the prompt cache."""

    url: str = Field(default="redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    key_prefix: str = "fulcrum:"
    connect_timeout: float = Field(default=0.25, gt=0)
    timeout: float = Field(default=0.5, gt=0)  # per command
    retry_interval: float = Field(default=1.0, gt=0)  # after a failure, try Redis again this often


class LimitsConfig(_Strict):
    """Where limit counters live and what happens when that place is unreachable."""

    backend: Literal["memory", "redis"] = "memory"
    on_backend_error: Literal["fail_open", "fail_closed"] = "fail_open"
    default_max_tokens: int = Field(default=1024, gt=0)  # output reserved without max_tokens


# -- prompt cache ---------------------------------------------------------------------------

MIB = 1024 * 1024


class CacheConfig(_Strict):
    """The prompt cache: exact-match answers, per tenant."""

    enabled: bool = False
    backend: Literal["memory", "redis"] = "memory"
    ttl_seconds: float = Field(default=3600.0, gt=0)
    max_bytes: int = Field(default=64 * MIB, gt=0)
    max_entry_bytes: int = Field(default=1 * MIB, gt=0)

    @model_validator(mode="after")
    def _entry_fits(self) -> CacheConfig:
        if self.backend == "memory" and self.max_entry_bytes > self.max_bytes:
            raise ValueError("max_entry_bytes must not exceed max_bytes")
        return self


# -- tracing ---------------------------------------------------------------------------------


class TracingConfig(_Strict):
    """``tracing:`` — OpenTelemetry spans for requests and upstream attempts (off by default)."""

    enabled: bool = False
    service_name: str = Field(default="fulcrum", min_length=1)
    # otlp: OTLP/HTTP protobuf; console: spans printed to stdout; none: spans are made (so
    # trace context still reaches upstreams) but exported nowhere.
    exporter: Literal["otlp", "console", "none"] = "otlp"
    # The full OTLP/HTTP traces URL (e.g. http://collector:4318/v1/traces); None: from the
    # standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT environment.
    endpoint: HttpUrl | None = None
    # Share of new traces kept; a caller's sampling decision (traceparent) is always followed.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # Sent with every export (e.g. a collector's auth token): kept out of reprs and logs.
    # Empty: OTEL_EXPORTER_OTLP_HEADERS applies.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)


# -- audit log ------------------------------------------------------------------------------

_AUDIT_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_AUDIT_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"


class RedactConfig(_Strict):
    """Which kinds of personal data are masked in audited prompt and response bodies."""

    email: bool = True
    phone: bool = True
    card: bool = True  # payment card numbers (Luhn-checked)
    cpf: bool = True  # Brazilian individual taxpayer number (check digits verified)
    cnpj: bool = True  # Brazilian company number (check digits verified)


class S3SinkConfig(_Strict):
    """Ship closed segments to S3 with SSE-KMS under the configured key."""

    type: Literal["s3"]
    bucket: str = Field(pattern=_AUDIT_BUCKET)
    prefix: str = "audit"
    region: str = Field(pattern=_AUDIT_REGION)
    kms_key_id: str = Field(min_length=1)  # key id, alias or ARN
    endpoint_url: HttpUrl | None = None  # S3-compatible endpoint or VPC endpoint
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=10)  # botocore's own retries per upload

    @field_validator("prefix")
    @classmethod
    def _clean_prefix(cls, prefix: str) -> str:
        cleaned = prefix.strip("/")
        if ".." in cleaned.split("/"):
            raise ValueError("prefix must not contain '..'")
        return cleaned

    @property
    def endpoint(self) -> str | None:
        return None if self.endpoint_url is None else str(self.endpoint_url).rstrip("/")


class DirectorySinkConfig(_Strict):
    """Ship closed segments into a local (or mounted) directory."""

    type: Literal["directory"]
    path: Path


AuditSinkConfig = Annotated[S3SinkConfig | DirectorySinkConfig, Field(discriminator="type")]


class AuditConfig(_Strict):
    """The durable audit log: local spool, shipping to a sink, redaction of bodies.

    Relative paths are meant to be resolved against the configuration file's directory
    (``resolve_paths``), like the SQLite store.
    """

    enabled: bool = False
    spool_dir: Path = Path("audit-spool")
    segment_max_bytes: int = Field(default=8 * 1024 * 1024, ge=4096)
    segment_max_age_seconds: float = Field(default=60.0, gt=0)
    sink: AuditSinkConfig = DirectorySinkConfig(type="directory", path=Path("audit-log"))
    redact: RedactConfig = RedactConfig()
    ship_interval_seconds: float = Field(default=1.0, gt=0)  # idle poll for due segments
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    stop_timeout_seconds: float = Field(default=10.0, ge=0)  # shipping on graceful stop

    @model_validator(mode="after")
    def _backoff_ordered(self) -> AuditConfig:
        if self.retry_initial_seconds > self.retry_max_seconds:
            raise ValueError("retry_initial_seconds must not exceed retry_max_seconds")
        return self

    def resolve_paths(self, base: Path) -> AuditConfig:
        """Relative spool and directory-sink paths mean: next to the configuration file."""
        sink = self.sink
        if isinstance(sink, DirectorySinkConfig) and not sink.path.is_absolute():
            sink = sink.model_copy(update={"path": (base / sink.path).resolve()})
        spool = self.spool_dir if self.spool_dir.is_absolute() else (base / self.spool_dir)
        return self.model_copy(update={"spool_dir": spool.resolve(), "sink": sink})


class GatewayConfig(_Strict):
    """The whole configuration of one gateway process."""

    server: ServerConfig = ServerConfig()
    routing: RoutingConfig = RoutingConfig()
    deployments: dict[str, Deployment]
    models: dict[str, ModelRoute]
    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    auth: AuthConfig
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    redis: RedisConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    audit: AuditConfig = AuditConfig()
    cache: CacheConfig = CacheConfig()
    tracing: TracingConfig = TracingConfig()

    @field_validator("deployments")
    @classmethod
    def _some_deployments(cls, value: dict[str, Deployment]) -> dict[str, Deployment]:
        if not value:
            raise ValueError("at least one deployment is required")
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"invalid deployment name {name!r}")
        return value

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, ModelRoute]) -> dict[str, ModelRoute]:
        if not value:
            raise ValueError("at least one model alias is required")
        for alias in value:
            if not alias.strip():
                raise ValueError("a model alias must not be empty")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        for alias, route in self.models.items():
            for index, target in enumerate(route.deployments):
                if target not in self.deployments:
                    raise _PathError(
                        ("models", alias, "deployments", index),
                        f"unknown deployment {target!r} (known: {', '.join(self.deployments)})",
                    )
        for tenant, policy in self.tenants.items():
            for alias in policy.models or ():
                if alias not in self.models:
                    raise _PathError(("tenants", tenant, "models"), f"unknown model {alias!r}")
        if self.limits.backend == "redis" and self.redis is None:
            raise _PathError(("limits", "backend"), "'redis' needs a top-level 'redis' section")
        if self.cache.backend == "redis" and self.cache.enabled and self.redis is None:
            raise _PathError(("cache", "backend"), "'redis' needs a top-level 'redis' section")
        return self


class _PathError(ValueError):
    """A cross-field error that knows which key it is about."""

    def __init__(self, path: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def interpolate_env(value: Any, environ: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {
            key: interpolate_env(item, environ, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(item, environ, f"{path}.{i}") for i, item in enumerate(value)]
    return value


_PROVIDER_TAGS = frozenset({"openai", "bedrock"})


def _user_location(loc: tuple[int | str, ...]) -> list[str]:
    """A pydantic location without union-branch tags such as ``list[StaticKey]``."""
    return [
        str(part)
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part in _PROVIDER_TAGS))
    ]


def format_validation_error(error: ValidationError) -> str:
    """One line, ``key.path: reason``, for any model of this module (also tenant policies)."""
    # With unions, pydantic reports one error per branch: the deepest is the informative one.
    best = max(error.errors(), key=lambda item: len(_user_location(item["loc"])))
    location = ".".join(_user_location(best["loc"]))
    message = best["msg"].removeprefix("Value error, ")
    if best["type"] == "extra_forbidden":
        message = "unknown key"
    elif location == "auth" and best["type"] in {"model_type", "model_attributes_type"}:
        message = "must be 'none', a list of {key | key_sha256, tenant}, or a mapping"
    return f"{location or '<root>'}: {message}"


def parse_config(raw: Any, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Validate a parsed YAML document (after env interpolation) into a GatewayConfig."""
    if not isinstance(raw, dict):
        raise ConfigError("<root>: the configuration must be a mapping")
    data = interpolate_env(raw, os.environ if environ is None else environ)
    try:
        return GatewayConfig.model_validate(data)
    except _PathError as exc:
        raise ConfigError(f"{'.'.join(map(str, exc.path))}: {exc.reason}") from None
    except ValidationError as exc:
        cause = _path_error_in(exc)
        if cause is not None:
            raise ConfigError(f"{'.'.join(map(str, cause.path))}: {cause.reason}") from None
        raise ConfigError(format_validation_error(exc)) from None


def _path_error_in(exc: ValidationError) -> _PathError | None:
    for item in exc.errors():
        ctx = item.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _PathError):
            return cause
    return None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, interpolate and validate a YAML configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {file}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}{where}: {problem}") from None
    config = parse_config(raw, environ)
    return config.model_copy(
        update={
            "store": resolve_store(config.store, file.parent),
            "audit": config.audit.resolve_paths(file.parent),
        }
    )


def resolve_store(store: StoreConfig, base: Path) -> StoreConfig:
    """A relative SQLite path means: next to the configuration file."""
    prefix = "sqlite:///"
    if store.url.startswith(prefix):
        path = Path(store.url[len(prefix) :])
        if not path.is_absolute():
            return StoreConfig(url=prefix + str((base / path).resolve()))
    return store
