"""Bedrock deployments in the configuration: model kind, processing regions, mistakes."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.config import BedrockDeployment, infer_model_kind, parse_config
from fulcrum.errors import ConfigError

FOUNDATION = "anthropic.claude-3-haiku-20240307-v1:0"
PT_ARN = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/abc123def456"
US_PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
)
EU_PROFILE_ARN = (
    "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/"
    "eu.anthropic.claude-3-5-sonnet-20240620-v1:0"
)


def config(**deployment: Any) -> dict[str, Any]:
    return {
        "deployments": {
            "bd": {"provider": "bedrock", "region": "us-east-1", "model": FOUNDATION, **deployment}
        },
        "models": {"claude": ["bd"]},
        "auth": "none",
    }


def deployment(**fields: Any) -> BedrockDeployment:
    loaded = parse_config(config(**fields), environ={}).deployments["bd"]
    assert isinstance(loaded, BedrockDeployment)
    return loaded


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        pytest.param(FOUNDATION, "foundation", id="foundation-anthropic"),
        pytest.param("amazon.titan-embed-text-v2:0", "foundation", id="foundation-titan"),
        pytest.param("meta.llama3-1-70b-instruct-v1:0", "foundation", id="foundation-meta"),
        pytest.param(
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "inference_profile", id="us-profile"
        ),
        pytest.param(
            "eu.anthropic.claude-3-5-sonnet-20240620-v1:0", "inference_profile", id="eu-profile"
        ),
        pytest.param("apac.amazon.nova-pro-v1:0", "inference_profile", id="apac-profile"),
        pytest.param(
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "inference_profile",
            id="global-profile",
        ),
        pytest.param(US_PROFILE_ARN, "inference_profile", id="profile-arn"),
        pytest.param(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
            "inference_profile",
            id="application-profile-arn",
        ),
        pytest.param(PT_ARN, "provisioned", id="pt-arn"),
        pytest.param(
            "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:provisioned-model/abc123",
            "provisioned",
            id="pt-arn-gov-partition",
        ),
    ],
)
def test_model_kind_is_inferred(model: str, kind: str) -> None:
    assert infer_model_kind(model) == kind
    loaded = deployment(model=model)
    assert loaded.kind == kind
    assert deployment(model=model, model_kind=kind).kind == kind  # the right explicit kind is fine


US = {"us-east-1", "us-east-2", "us-west-2"}
EU = {"eu-central-1", "eu-west-1", "eu-west-3"}
APAC = {"ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2"}


@pytest.mark.parametrize(
    ("fields", "must_include", "prefix"),
    [
        pytest.param({"region": "eu-central-1"}, {"eu-central-1"}, "eu-central-1", id="foundation"),
        pytest.param({"model": PT_ARN}, {"us-west-2"}, "us-west-2", id="pt-arn-region"),
        pytest.param(
            {"model": "us.anthropic.claude-3-5-sonnet-20241022-v2:0"}, US, "us-", id="us-profile"
        ),
        pytest.param(
            {"region": "eu-west-1", "model": "eu.anthropic.claude-3-5-sonnet-20240620-v1:0"},
            EU,
            "eu-",
            id="eu-profile",
        ),
        pytest.param(
            {"region": "ap-southeast-1", "model": "apac.amazon.nova-pro-v1:0"},
            APAC,
            "ap-",
            id="apac-profile",
        ),
        pytest.param({"model": US_PROFILE_ARN}, US, "us-", id="us-profile-arn"),
        pytest.param(
            {"region": "eu-central-1", "model": EU_PROFILE_ARN}, EU, "eu-", id="eu-profile-arn"
        ),
    ],
)
def test_processing_regions(fields: dict[str, Any], must_include: set[str], prefix: str) -> None:
    regions = deployment(**fields).regions
    assert set(regions) >= must_include
    assert all(region.startswith(prefix) for region in regions), regions
    assert not any(region.startswith("us-gov") for region in regions)


def test_pt_arn_region_wins_over_the_deployment_region() -> None:
    assert deployment(region="us-east-1", model=PT_ARN).regions == ("us-west-2",)


def test_foundation_model_stays_in_the_deployment_region() -> None:
    assert deployment(region="eu-west-3").regions == ("eu-west-3",)


def test_global_profile_may_run_anywhere() -> None:
    regions = deployment(model="global.anthropic.claude-sonnet-4-20250514-v1:0").regions
    assert regions == ("*",)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(FOUNDATION, id="foundation"),
        pytest.param("us.anthropic.claude-3-5-sonnet-20241022-v2:0", id="us-profile"),
        pytest.param(PT_ARN, id="pt-arn"),
    ],
)
def test_explicit_processing_regions_win(model: str) -> None:
    loaded = deployment(model=model, processing_regions=["us-east-2"])
    assert loaded.regions == ("us-east-2",)


def test_endpoint_default_and_override() -> None:
    assert (
        deployment(region="eu-west-1").endpoint == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    )
    assert deployment(endpoint_url="http://127.0.0.1:9000/").endpoint == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("model", "model_kind"),
    [
        pytest.param(FOUNDATION, "provisioned", id="foundation-as-provisioned"),
        pytest.param(FOUNDATION, "inference_profile", id="foundation-as-profile"),
        pytest.param(PT_ARN, "inference_profile", id="pt-as-profile"),
        pytest.param(
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "foundation", id="profile-as-foundation"
        ),
    ],
)
def test_mismatched_model_kind_names_the_key(model: str, model_kind: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(model=model, model_kind=model_kind), environ={})
    message = str(info.value)
    assert message.startswith("deployments.bd"), message
    assert "model_kind" in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        pytest.param({"region": "us-east"}, "deployments.bd.region", id="region-without-number"),
        pytest.param({"region": "US-EAST-1"}, "deployments.bd.region", id="region-upper-case"),
        pytest.param({"region": "useast1"}, "deployments.bd.region", id="region-no-dashes"),
        pytest.param({"model": ""}, "deployments.bd.model", id="empty-model"),
        pytest.param({"model_kind": "serverless"}, "deployments.bd.model_kind", id="unknown-kind"),
        pytest.param({"auth": {"type": "api_key"}}, "deployments.bd.auth", id="api-key-missing"),
        pytest.param(
            {"auth": {"access_key_id": "AKID"}}, "deployments.bd.auth", id="half-explicit-keys"
        ),
        pytest.param({"auth": {"type": "oauth"}}, "deployments.bd.auth.type", id="unknown-auth"),
        pytest.param({"colour": "red"}, "deployments.bd.colour", id="unknown-key"),
    ],
)
def test_mistakes_name_the_key(fields: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(**fields), environ={})
    assert str(info.value).startswith(key), str(info.value)


def test_api_key_auth_with_key_is_valid() -> None:
    raw = config(auth={"type": "api_key", "api_key": "${BEDROCK_KEY}"})
    loaded = parse_config(raw, environ={"BEDROCK_KEY": "secret-key"}).deployments["bd"]
    assert isinstance(loaded, BedrockDeployment)
    assert (loaded.auth.type, loaded.auth.api_key) == ("api_key", "secret-key")
