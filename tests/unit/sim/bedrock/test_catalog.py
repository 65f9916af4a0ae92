"""Model id resolution (ids, profiles, ARNs) and catalogue files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.sim.bedrock.catalog import (
    EMBEDDING,
    FOUNDATION,
    HAIKU,
    PROFILE,
    PROVISIONED,
    SONNET,
    TITAN_EMBED,
    CatalogError,
    catalog_from_data,
    default_catalog,
    load_catalog,
    provisioned_arn,
)
from fulcrum.sim.bedrock.errors import BedrockError


def test_default_catalogue_resolves_every_kind_of_id() -> None:
    catalog = default_catalog().with_default_quotas(100, 5000)
    target = catalog.resolve(HAIKU)
    assert (target.kind, target.model.model_id, target.quota_key) == (FOUNDATION, HAIKU, HAIKU)
    assert (target.rpm, target.tpm) == (100, 5000)
    for prefix in ("us", "eu", "global"):
        target = catalog.resolve(f"{prefix}.{SONNET}")
        assert (target.kind, target.model.model_id) == (PROFILE, SONNET)
        assert target.quota_key == f"{prefix}.{SONNET}"
    arn = provisioned_arn("fulcrumhaiku")
    target = catalog.resolve(arn)
    assert (target.kind, target.model.model_id, target.rpm, target.tpm) == (
        PROVISIONED,
        HAIKU,
        None,
        200_000,
    )
    fm_arn = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
    assert catalog.resolve(fm_arn).quota_key == HAIKU
    profile_arn = f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{HAIKU}"
    assert catalog.resolve(profile_arn).quota_key == f"eu.{HAIKU}"
    assert catalog.resolve(TITAN_EMBED).model.kind == EMBEDDING


def test_unknown_ids_fail_like_bedrock() -> None:
    catalog = default_catalog()
    with pytest.raises(BedrockError) as info:
        catalog.resolve("anthropic.claude-9-v1:0")
    assert (info.value.name, info.value.message) == (
        "ValidationException",
        "The provided model identifier is invalid.",
    )
    with pytest.raises(BedrockError) as info:
        catalog.resolve("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl")
    assert (info.value.name, info.value.status) == ("ResourceNotFoundException", 404)
    with pytest.raises(BedrockError) as info:
        catalog.resolve("has spaces/and slashes")
    assert "failed to satisfy constraint: Member must satisfy regular expression pattern" in (
        info.value.message
    )
    with pytest.raises(BedrockError, match="length greater than or equal to 1"):
        catalog.resolve("")


def test_catalogue_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        """
models:
  - id: anthropic.claude-3-haiku-20240307-v1:0
    ttft_ms: 5
    output_tokens_per_s: 1000
    rpm: 2
    inference_profiles: [us]
  - id: amazon.titan-embed-text-v2:0
    kind: embedding
    embedding_dimensions: [256]
provisioned:
  - arn: arn:aws:bedrock:us-east-1:123456789012:provisioned-model/tinycapacity
    model: anthropic.claude-3-haiku-20240307-v1:0
    tokens_per_minute: 300
"""
    )
    catalog = load_catalog(path)
    haiku = catalog.model(HAIKU)
    assert (haiku.ttft_ms, haiku.rpm, haiku.inference_profiles) == (5.0, 2, ("us",))
    assert catalog.model(TITAN_EMBED).embedding_dimensions == (256,)
    target = catalog.resolve(
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/tinycapacity"
    )
    assert target.tpm == 300
    with pytest.raises(BedrockError):
        catalog.resolve(f"eu.{HAIKU}")
    json_path = tmp_path / "catalog.json"
    json_path.write_text('{"models": [{"id": "meta.llama3-1-8b-instruct-v1:0"}]}')
    assert load_catalog(json_path).models[0].model_id == "meta.llama3-1-8b-instruct-v1:0"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "mapping"),
        ({"models": []}, "non-empty"),
        ({"models": [{"id": "x.y", "colour": 1}]}, "unknown field"),
        ({"models": [{"id": "x.y", "kind": "image"}]}, "kind"),
        ({"models": [{"id": "x.y", "tool_choice": ["sometimes"]}]}, "tool_choice"),
        ({"models": [{"id": "x.y", "rpm": 0}]}, "rpm"),
        ({"models": [{"id": "x.y"}, {"id": "x.y"}]}, "duplicate"),
        (
            {
                "models": [{"id": "x.y"}],
                "provisioned": [{"arn": "nope", "model": "x.y", "tokens_per_minute": 1}],
            },
            "arn",
        ),
        (
            {
                "models": [{"id": "x.y"}],
                "provisioned": [
                    {
                        "arn": provisioned_arn("abcdefghijkl"),
                        "model": "z.z",
                        "tokens_per_minute": 1,
                    }
                ],
            },
            "unknown base model",
        ),
    ],
)
def test_invalid_catalogues(data: object, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog_from_data(data)


def test_catalogue_json_view_round_trips() -> None:
    catalog = default_catalog()
    again = catalog_from_data(catalog.to_json())
    assert again.models == catalog.models
    assert again.provisioned == catalog.provisioned
