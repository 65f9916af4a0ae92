"""Tenant policies: the YAML wins on a clash, stored ones fill in, invalid rows are ignored."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fulcrum.auth.tenants import TenantDirectory, validate_policy
from fulcrum.config import TenantConfig
from fulcrum.errors import ConfigError
from fulcrum.store import Store, open_store

YAML_TENANTS = {
    "acme": TenantConfig.model_validate({"models": ["llama"], "limits": {"rpm": 10}}),
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'tenants.db'}")
    yield store
    await store.close()


async def test_stored_tenants_appear_after_a_reload(store: Store) -> None:
    directory = TenantDirectory(YAML_TENANTS, store)
    await store.put_tenant("globex", {"data_policy": {"vpc_only": True}})
    assert directory.policy("globex") is None
    assert not directory.knows("globex")
    await directory.reload()
    policy = directory.policy("globex")
    assert policy is not None and policy.data_policy.vpc_only
    assert directory.knows("globex")
    assert directory.names() == ["acme", "globex"]


async def test_the_yaml_policy_wins_over_a_stored_one_of_the_same_name(store: Store) -> None:
    await store.put_tenant("acme", {"models": ["gpt"], "limits": {"rpm": 9999}})
    directory = TenantDirectory(YAML_TENANTS, store)
    await directory.reload()
    assert directory.policy("acme") is YAML_TENANTS["acme"]


async def test_unknown_tenants_are_unknown(store: Store) -> None:
    directory = TenantDirectory(YAML_TENANTS, store)
    await directory.reload()
    assert directory.policy("initech") is None
    assert not directory.knows("initech")
    assert directory.knows("acme")


async def test_a_deleted_stored_tenant_disappears_at_the_next_reload(store: Store) -> None:
    await store.put_tenant("globex", {})
    directory = TenantDirectory({}, store)
    await directory.reload()
    assert directory.policy("globex") == TenantConfig()
    assert await store.delete_tenant("globex")
    await directory.reload()
    assert directory.policy("globex") is None


async def test_an_invalid_stored_policy_is_ignored_and_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.put_tenant("broken", {"limits": {"rpm": -1}})
    await store.put_tenant("fine", {"limits": {"rpm": 5}})
    directory = TenantDirectory({}, store)
    with caplog.at_level(logging.ERROR, logger="fulcrum.auth.tenants"):
        await directory.reload()
        await directory.reload()
    assert directory.policy("broken") is None
    assert not directory.knows("broken")
    fine = directory.policy("fine")
    assert fine is not None and fine.limits.rpm == 5
    reports = [record for record in caplog.records if "broken" in record.getMessage()]
    assert len(reports) == 1
    assert "limits.rpm" in reports[0].getMessage()


async def test_an_invalid_stored_policy_does_not_hide_the_yaml_one(store: Store) -> None:
    await store.put_tenant("acme", {"no_such_key": 1})
    directory = TenantDirectory(YAML_TENANTS, store)
    await directory.reload()
    assert directory.policy("acme") is YAML_TENANTS["acme"]


async def test_without_a_store_only_the_yaml_counts() -> None:
    directory = TenantDirectory(YAML_TENANTS)
    await directory.reload()
    assert directory.names() == ["acme"]


def test_policy_validation_names_the_key_path() -> None:
    with pytest.raises(ConfigError, match=r"^limits\.per_key\.rpm: "):
        validate_policy({"limits": {"per_key": {"rpm": 0}}})
    with pytest.raises(ConfigError, match=r"^cache\.allowd: unknown key$"):
        validate_policy({"cache": {"allowd": False}})
