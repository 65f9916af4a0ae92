"""``fulcrum tenants set | show | list | delete``: tenant policies kept in the store.

A policy is validated with the same model as the gateway configuration's ``tenants``
section before it is written, and stored as the keys the operator set (defaults are not
frozen into the row, so a later default applies to it). A tenant also defined in the
gateway's YAML keeps its YAML policy: the file wins.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml

from fulcrum.admin.common import add_store_arguments, render_table, run_with_store
from fulcrum.auth.tenants import validate_policy
from fulcrum.config import NAME_PATTERN, TenantConfig
from fulcrum.errors import UserError
from fulcrum.store.base import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tenants`` sub-commands, on the parser of ``fulcrum tenants``."""
    actions = parser.add_subparsers(dest="tenants_action", required=True, metavar="ACTION")

    put = actions.add_parser("set", help="create or replace a tenant's policy")
    put.add_argument("name", metavar="NAME")
    source = put.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", "-f", metavar="FILE", help="the policy as YAML or JSON")
    source.add_argument("--json", metavar="JSON", help="the policy as a JSON object")
    add_store_arguments(put)

    show = actions.add_parser("show", help="print a tenant's stored policy")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--format", choices=("yaml", "json"), default="yaml")
    add_store_arguments(show)

    listing = actions.add_parser("list", help="list the tenants in the store")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    add_store_arguments(listing)

    delete = actions.add_parser("delete", help="delete a tenant's stored policy")
    delete.add_argument("name", metavar="NAME")
    add_store_arguments(delete)


def run(args: argparse.Namespace) -> int:
    """Validate the arguments (and the policy), then act on the store."""
    action = args.tenants_action
    if action == "set":
        name = _tenant(args.name)
        policy = stored_form(_policy(name, args.file, args.json))
        return run_with_store(args, lambda store: _set(store, name, policy))
    if action == "show":
        name = _tenant(args.name)
        return run_with_store(args, lambda store: _show(store, name, args.format))
    if action == "list":
        return run_with_store(args, lambda store: _list(store, args.format))
    if action == "delete":
        name = _tenant(args.name)
        return run_with_store(args, lambda store: _delete(store, name))
    raise UserError(f"unknown tenants action {action!r}")


def _tenant(text: str) -> str:
    if not re.match(NAME_PATTERN, text):
        raise UserError(f"invalid tenant name {text!r}")
    return text


def _policy(name: str, file: str | None, text: str | None) -> TenantConfig:
    """Read and validate the policy; every failure is one line naming where it is."""
    if file is not None:
        path = Path(file)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            raise UserError(f"{path}{where}: invalid YAML") from None
        origin = str(path)
    else:
        assert text is not None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"--json: invalid JSON ({exc.msg} at column {exc.colno})") from None
        origin = "--json"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"policy of tenant {name} ({origin}): must be a mapping")
    try:
        return validate_policy(raw)
    except UserError as exc:
        raise UserError(f"policy of tenant {name} ({origin}): {exc}") from None


def stored_form(policy: TenantConfig) -> dict[str, Any]:
    """The keys the operator set, as JSON-compatible values."""
    return policy.model_dump(mode="json", exclude_unset=True)


async def _set(store: Store, name: str, policy: dict[str, Any]) -> int:
    existed = await store.get_tenant(name) is not None
    await store.put_tenant(name, policy)
    print(f"{'Replaced' if existed else 'Created'} the policy of tenant {name}.")
    return 0


async def _show(store: Store, name: str, output: str) -> int:
    policy = await store.get_tenant(name)
    if policy is None:
        raise UserError(f"no tenant {name!r} in the store")
    if output == "json":
        print(json.dumps(policy, indent=2, sort_keys=True))
    else:
        print(yaml.safe_dump(policy, sort_keys=True).rstrip() if policy else "{}")
    return 0


async def _list(store: Store, output: str) -> int:
    tenants = await store.list_tenants()
    if output == "json":
        print(json.dumps(tenants, indent=2, sort_keys=True))
        return 0
    rows = [[name, *_summary(raw)] for name, raw in sorted(tenants.items())]
    print(render_table(["TENANT", "MODELS", "DATA_POLICY", "LIMITS"], rows))
    return 0


def _summary(raw: dict[str, Any]) -> list[str]:
    try:
        policy = TenantConfig.model_validate(raw)
    except ValueError:
        return ["(invalid policy)", "-", "-"]
    models = ",".join(policy.models) if policy.models is not None else "all"
    return [models, policy.data_policy.describe(), "yes" if policy.limits.any else "none"]


async def _delete(store: Store, name: str) -> int:
    if not await store.delete_tenant(name):
        raise UserError(f"no tenant {name!r} in the store")
    print(f"Deleted the policy of tenant {name}.")
    return 0
