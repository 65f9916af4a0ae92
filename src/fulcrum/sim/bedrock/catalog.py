"""The model catalogue: which model ids the emulator serves, and how each one behaves.

Three kinds of identifier reach a model, as on Bedrock:

* a **foundation model** id (``anthropic.claude-3-haiku-20240307-v1:0``) or its ARN
  (``arn:aws:bedrock:us-east-1::foundation-model/<id>``): on-demand;
* a **cross-region inference profile** (``us.<id>``, ``eu.<id>``, ``global.<id>``, ...) or its
  ARN (``arn:aws:bedrock:<region>:<account>:inference-profile/<profile id>``): on-demand, with
  its own quota counters;
* a **Provisioned Throughput** ARN
  (``arn:aws:bedrock:<region>:<account>:provisioned-model/<12 chars>``): a base model plus a
  capacity in tokens per minute.

A catalogue file (``--catalog``, YAML or JSON) replaces the built-in one; see
docs/emulator-bedrock.md for its format.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fulcrum.sim.bedrock.errors import BedrockError, validation

CHAT = "chat"
EMBEDDING = "embedding"
TOOL_CHOICES = ("auto", "any", "tool")

FOUNDATION = "foundation-model"
PROFILE = "inference-profile"
PROVISIONED = "provisioned-model"

ACCOUNT = "123456789012"

MODEL_ID_PATTERN = (
    "(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}"
    "[a-z0-9-]{1,63}/[a-z0-9]{12})|(:foundation-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}"
    "([.:]?[a-z0-9-]{1,63}))|([0-9]{12}:imported-model/[a-z0-9]{12})|([0-9]{12}:"
    "provisioned-model/[a-z0-9]{12})|([0-9]{12}:custom-model-deployment/[a-z0-9]{12})|"
    "([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+)))|"
    "([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.:]?[a-z0-9-]{1,63}))|(([0-9a-zA-Z][_-]?)+)|"
    "([a-zA-Z0-9-:.]+)|(^(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:prompt/"
    "[0-9a-zA-Z]{10}(?::[0-9]{1,5})?))$|(^arn:aws:sagemaker:[a-z0-9-]+:[0-9]{12}:endpoint/"
    "[a-zA-Z0-9-]+$)|(^arn:aws(-[^:]+)?:bedrock:([0-9a-z-]{1,20}):([0-9]{12}):(default-)?"
    "prompt-router/[a-zA-Z0-9-:.]+$)"
)
"""``ConversationalModelId``'s pattern in the service model (matched against the whole id)."""
_MODEL_ID_RE = re.compile(MODEL_ID_PATTERN)
_ARN_RE = re.compile(r"^arn:aws(?:-[^:]+)?:bedrock:([a-z0-9-]{1,20}):([0-9]{12})?:([a-z-]+)/(.+)$")
_PT_ID_RE = re.compile(r"^[a-z0-9]{12}$")
_PROFILE_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One foundation model and how the emulator plays it."""

    model_id: str
    kind: str = CHAT
    max_output_tokens: int = 4096
    """Largest ``maxTokens`` accepted (ValidationException beyond it)."""
    context_window: int = 200_000
    """Largest prompt, in tokens ("Input is too long for requested model." beyond it)."""
    ttft_ms: float = 300.0
    """Time to first token (embeddings: the whole latency)."""
    output_tokens_per_s: float = 100.0
    images: bool = True
    tool_choices: tuple[str, ...] = TOOL_CHOICES
    """Which ``toolChoice`` members the model accepts."""
    prompt_caching: bool = False
    cache_min_tokens: int = 1024
    """A cache checkpoint takes effect only after at least this many prompt tokens."""
    rpm: int | None = None
    """On-demand requests per minute (None: ``--on-demand-rpm``, or unlimited)."""
    tpm: int | None = None
    """On-demand tokens per minute (None: ``--on-demand-tpm``, or unlimited)."""
    inference_profiles: tuple[str, ...] = ()
    """Cross-region profile prefixes served for this model (``us`` → ``us.<id>``)."""
    embedding_dimensions: tuple[int, ...] = (1024, 512, 256)
    """Embedding models: accepted ``dimensions``; the first is the default."""


@dataclass(frozen=True, slots=True)
class ProvisionedModel:
    """A Provisioned Throughput ARN: a base model and its capacity."""

    arn: str
    model_id: str
    tokens_per_minute: int


@dataclass(frozen=True, slots=True)
class Target:
    """What one ``modelId`` resolves to."""

    invoked_id: str
    model: ModelSpec
    kind: str
    """``foundation-model``, ``inference-profile`` or ``provisioned-model``."""
    quota_key: str
    """The id whose counters this request is charged to."""
    rpm: int | None
    tpm: int | None


def _profile_ids(model: ModelSpec) -> list[str]:
    return [f"{prefix}.{model.model_id}" for prefix in model.inference_profiles]


@dataclass
class Catalog:
    """Models, inference profiles and Provisioned Throughput ARNs, with id resolution."""

    models: tuple[ModelSpec, ...]
    provisioned: tuple[ProvisionedModel, ...] = ()
    default_rpm: int | None = None
    default_tpm: int | None = None
    _by_id: dict[str, ModelSpec] = field(init=False, repr=False)
    _profiles: dict[str, ModelSpec] = field(init=False, repr=False)
    _pt: dict[str, ProvisionedModel] = field(init=False, repr=False)
    _resolved: dict[str, Target] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {}
        self._profiles = {}
        for model in self.models:
            if model.model_id in self._by_id:
                raise ValueError(f"duplicate model id {model.model_id!r}")
            self._by_id[model.model_id] = model
            for profile in _profile_ids(model):
                self._profiles[profile] = model
        self._pt = {}
        for pt in self.provisioned:
            if pt.model_id not in self._by_id:
                raise ValueError(f"{pt.arn}: unknown base model {pt.model_id!r}")
            if pt.arn in self._pt:
                raise ValueError(f"duplicate provisioned model {pt.arn!r}")
            self._pt[pt.arn] = pt
        self._resolved = {}

    def with_default_quotas(self, rpm: int | None, tpm: int | None) -> Catalog:
        """This catalogue with on-demand quotas for models that set none themselves."""
        return Catalog(self.models, self.provisioned, rpm, tpm)

    def model(self, model_id: str) -> ModelSpec:
        return self._by_id[model_id]

    def profile_ids(self) -> list[str]:
        return list(self._profiles)

    def resolve(self, model_id: str) -> Target:
        """The target of ``model_id``, or the ValidationException/ResourceNotFoundException
        Bedrock answers for it."""
        target = self._resolved.get(model_id)
        if target is None:
            target = self._resolve(model_id)
            self._resolved[model_id] = target  # only valid ids are cached: the set is finite
        return target

    def _on_demand(self, invoked: str, model: ModelSpec, kind: str, key: str) -> Target:
        rpm = model.rpm if model.rpm is not None else self.default_rpm
        tpm = model.tpm if model.tpm is not None else self.default_tpm
        return Target(invoked, model, kind, key, rpm, tpm)

    def _resolve(self, model_id: str) -> Target:
        if not model_id:
            raise validation(
                "1 validation error detected: Value '' at 'modelId' failed to satisfy "
                "constraint: Member must have length greater than or equal to 1"
            )
        if len(model_id) > 2048:
            raise validation(
                f"1 validation error detected: Value '{model_id}' at 'modelId' failed to "
                "satisfy constraint: Member must have length less than or equal to 2048"
            )
        if not _MODEL_ID_RE.fullmatch(model_id):
            raise validation(
                f"1 validation error detected: Value '{model_id}' at 'modelId' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                f"{MODEL_ID_PATTERN}"
            )
        model = self._by_id.get(model_id)
        if model is not None:
            return self._on_demand(model_id, model, FOUNDATION, model_id)
        model = self._profiles.get(model_id)
        if model is not None:
            return self._on_demand(model_id, model, PROFILE, model_id)
        pt = self._pt.get(model_id)
        if pt is not None:
            base = self._by_id[pt.model_id]
            return Target(model_id, base, PROVISIONED, pt.arn, None, pt.tokens_per_minute)
        arn = _ARN_RE.match(model_id)
        if arn is not None:
            resource_type, resource = arn.group(3), arn.group(4)
            if resource_type == FOUNDATION and resource in self._by_id:
                return self._on_demand(model_id, self._by_id[resource], FOUNDATION, resource)
            if resource_type == PROFILE and resource in self._profiles:
                return self._on_demand(model_id, self._profiles[resource], PROFILE, resource)
            if resource_type != FOUNDATION:
                raise BedrockError(
                    "ResourceNotFoundException", "The specified resource ARN was not found."
                )
        raise validation("The provided model identifier is invalid.")

    def to_json(self) -> dict[str, Any]:
        """The catalogue in the file format (for ``GET /admin/catalog`` and docs)."""
        return {
            "models": [
                {
                    "id": m.model_id,
                    "kind": m.kind,
                    "max_output_tokens": m.max_output_tokens,
                    "context_window": m.context_window,
                    "ttft_ms": m.ttft_ms,
                    "output_tokens_per_s": m.output_tokens_per_s,
                    "images": m.images,
                    "tool_choice": list(m.tool_choices),
                    "prompt_caching": m.prompt_caching,
                    "cache_min_tokens": m.cache_min_tokens,
                    "rpm": m.rpm,
                    "tpm": m.tpm,
                    "inference_profiles": list(m.inference_profiles),
                    **(
                        {"embedding_dimensions": list(m.embedding_dimensions)}
                        if m.kind == EMBEDDING
                        else {}
                    ),
                }
                for m in self.models
            ],
            "provisioned": [
                {"arn": p.arn, "model": p.model_id, "tokens_per_minute": p.tokens_per_minute}
                for p in self.provisioned
            ],
        }


# ---------------------------------------------------------------------------------- defaults

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0"
LLAMA = "meta.llama3-1-8b-instruct-v1:0"
TITAN_EMBED = "amazon.titan-embed-text-v2:0"


def provisioned_arn(resource_id: str, region: str = "us-east-1") -> str:
    """A Provisioned Throughput ARN of the emulator's fictitious account."""
    return f"arn:aws:bedrock:{region}:{ACCOUNT}:provisioned-model/{resource_id}"


def default_catalog() -> Catalog:
    """The built-in catalogue (see docs/emulator-bedrock.md for the table)."""
    profiles = ("us", "eu", "global")
    return Catalog(
        models=(
            ModelSpec(
                HAIKU,
                max_output_tokens=4096,
                context_window=200_000,
                ttft_ms=350.0,
                output_tokens_per_s=120.0,
                prompt_caching=True,
                cache_min_tokens=1024,
                inference_profiles=profiles,
            ),
            ModelSpec(
                SONNET,
                max_output_tokens=4096,
                context_window=200_000,
                ttft_ms=700.0,
                output_tokens_per_s=60.0,
                prompt_caching=True,
                cache_min_tokens=1024,
                inference_profiles=profiles,
            ),
            ModelSpec(
                LLAMA,
                max_output_tokens=2048,
                context_window=128_000,
                ttft_ms=250.0,
                output_tokens_per_s=150.0,
                images=False,
                tool_choices=("auto",),
                inference_profiles=profiles,
            ),
            ModelSpec(
                TITAN_EMBED,
                kind=EMBEDDING,
                max_output_tokens=0,
                context_window=8192,
                ttft_ms=40.0,
                output_tokens_per_s=0.0,
                images=False,
                tool_choices=(),
            ),
        ),
        provisioned=(
            ProvisionedModel(provisioned_arn("fulcrumhaiku"), HAIKU, 200_000),
            ProvisionedModel(provisioned_arn("fulcrumsonet"), SONNET, 100_000),
        ),
    )


# ------------------------------------------------------------------------------ file loading


class CatalogError(ValueError):
    """An invalid catalogue file; the message names the entry and field."""


_MODEL_FIELDS = {
    "id",
    "kind",
    "max_output_tokens",
    "context_window",
    "ttft_ms",
    "output_tokens_per_s",
    "images",
    "tool_choice",
    "prompt_caching",
    "cache_min_tokens",
    "rpm",
    "tpm",
    "inference_profiles",
    "embedding_dimensions",
}
_PT_FIELDS = {"arn", "model", "tokens_per_minute"}


def _int(where: str, value: Any, low: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CatalogError(f"{where} must be an integer >= {low}")
    return value


def _num(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CatalogError(f"{where} must be a number >= 0")
    return float(value)


def _model_from(entry: Any, index: int) -> ModelSpec:
    where = f"models[{index}]"
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where} must be a mapping")
    unknown = sorted(set(entry) - _MODEL_FIELDS)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}")
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not _MODEL_ID_RE.fullmatch(model_id):
        raise CatalogError(f"{where}.id must be a valid Bedrock model id")
    kind = entry.get("kind", CHAT)
    if kind not in (CHAT, EMBEDDING):
        raise CatalogError(f"{where}.kind must be 'chat' or 'embedding'")
    base = ModelSpec(model_id, kind=kind)
    if kind == EMBEDDING:
        base = replace(base, context_window=8192, ttft_ms=40.0, images=False, tool_choices=())
    changes: dict[str, Any] = {}
    for name in ("max_output_tokens", "context_window", "cache_min_tokens"):
        if name in entry:
            changes[name] = _int(
                f"{where}.{name}", entry[name], 0 if name != "context_window" else 1
            )
    for name in ("rpm", "tpm"):
        if name in entry:
            changes[name] = _int(f"{where}.{name}", entry[name], 1, optional=True)
    for name in ("ttft_ms", "output_tokens_per_s"):
        if name in entry:
            changes[name] = _num(f"{where}.{name}", entry[name])
    for name in ("images", "prompt_caching"):
        if name in entry:
            if not isinstance(entry[name], bool):
                raise CatalogError(f"{where}.{name} must be true or false")
            changes[name] = entry[name]
    if "tool_choice" in entry:
        choices = entry["tool_choice"]
        if not isinstance(choices, list) or any(c not in TOOL_CHOICES for c in choices):
            raise CatalogError(f"{where}.tool_choice must be a list of auto, any, tool")
        changes["tool_choices"] = tuple(choices)
    if "inference_profiles" in entry:
        prefixes = entry["inference_profiles"]
        if not isinstance(prefixes, list) or not all(
            isinstance(p, str) and _PROFILE_PREFIX_RE.match(p) for p in prefixes
        ):
            raise CatalogError(f"{where}.inference_profiles must be a list of prefixes like 'us'")
        changes["inference_profiles"] = tuple(prefixes)
    if "embedding_dimensions" in entry:
        dims = entry["embedding_dimensions"]
        if (
            not isinstance(dims, list)
            or not dims
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims)
        ):
            raise CatalogError(f"{where}.embedding_dimensions must be a list of positive integers")
        changes["embedding_dimensions"] = tuple(dims)
    return replace(base, **changes)


def _provisioned_from(entry: Any, index: int) -> ProvisionedModel:
    where = f"provisioned[{index}]"
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where} must be a mapping")
    unknown = sorted(set(entry) - _PT_FIELDS)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}")
    arn = entry.get("arn")
    match = _ARN_RE.match(arn) if isinstance(arn, str) else None
    if (
        not isinstance(arn, str)
        or match is None
        or match.group(3) != PROVISIONED
        or not _PT_ID_RE.match(match.group(4))
    ):
        raise CatalogError(
            f"{where}.arn must look like arn:aws:bedrock:<region>:<account>:"
            "provisioned-model/<12 lowercase letters or digits>"
        )
    model = entry.get("model")
    if not isinstance(model, str):
        raise CatalogError(f"{where}.model must be a model id")
    tpm = _int(f"{where}.tokens_per_minute", entry.get("tokens_per_minute"), 1)
    assert tpm is not None
    return ProvisionedModel(arn, model, tpm)


def catalog_from_data(data: Any) -> Catalog:
    """A catalogue from parsed YAML/JSON (CatalogError on any invalid field)."""
    if not isinstance(data, Mapping):
        raise CatalogError("the catalogue must be a mapping with 'models' (and 'provisioned')")
    unknown = sorted(set(data) - {"models", "provisioned"})
    if unknown:
        raise CatalogError(f"unknown top-level field(s): {', '.join(unknown)}")
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise CatalogError("'models' must be a non-empty list")
    provisioned = data.get("provisioned") or []
    if not isinstance(provisioned, list):
        raise CatalogError("'provisioned' must be a list")
    try:
        return Catalog(
            tuple(_model_from(entry, i) for i, entry in enumerate(models)),
            tuple(_provisioned_from(entry, i) for i, entry in enumerate(provisioned)),
        )
    except CatalogError:
        raise
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


def load_catalog(path: str | Path) -> Catalog:
    """Read a YAML or JSON catalogue file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML/JSON: {exc}") from None
    return catalog_from_data(data)
