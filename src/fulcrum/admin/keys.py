"""``fulcrum keys create | list | revoke | rotate``: API keys kept (hashed) in the store.

A new key is printed once, alone on stdout (so ``KEY=$(fulcrum keys create …)`` works); what
describes it goes to stderr. Nothing here ever prints a stored salt or digest.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from fulcrum.admin.common import add_store_arguments, render_table, run_with_store
from fulcrum.admin.durations import DURATION_HELP, format_time, parse_duration, parse_expiry
from fulcrum.auth.api_keys import NewKey, generate_key, is_key_id, parse_key
from fulcrum.config import NAME_PATTERN, SCOPES
from fulcrum.errors import UserError
from fulcrum.store.base import KeyRecord, Store, utc_now


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``keys`` sub-commands, on the parser of ``fulcrum keys``."""
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create a key (printed once)")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--name", help="a label, e.g. the service using the key")
    _add_key_options(create)

    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--all", action="store_true", help="include expired and revoked keys")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    add_store_arguments(listing)

    revoke = actions.add_parser("revoke", help="revoke a key now")
    revoke.add_argument("key_id", metavar="KEY_ID")
    add_store_arguments(revoke)

    rotate = actions.add_parser(
        "rotate", help="replace a key: same tenant, name and scopes; the old one expires"
    )
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument(
        "--grace",
        default="0",
        help=f"how long the old key keeps working ({DURATION_HELP}; default 0: revoked now)",
    )
    _add_key_options(rotate, scopes=False)


def _add_key_options(parser: argparse.ArgumentParser, scopes: bool = True) -> None:
    parser.add_argument(
        "--expires", help="30d, 12h, 2027-01-31 or an ISO-8601 time (default: never)"
    )
    if scopes:
        parser.add_argument(
            "--scopes", help=f"comma-separated, from {','.join(SCOPES)} (default: all)"
        )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    add_store_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Validate the flags, then run the chosen action against the store."""
    if args.keys_action == "create":
        tenant, name = _tenant(args.tenant), _name(args.name)
        scopes = parse_scopes(args.scopes)
        expires = None if args.expires is None else parse_expiry(args.expires, utc_now())
        return run_with_store(
            args, lambda store: _create(store, tenant, name, scopes, expires, args.format)
        )
    if args.keys_action == "list":
        only = None if args.tenant is None else _tenant(args.tenant)
        return run_with_store(args, lambda store: _list(store, only, args.all, args.format))
    if args.keys_action == "revoke":
        key_id = _key_id(args.key_id)
        return run_with_store(args, lambda store: _revoke(store, key_id))
    if args.keys_action == "rotate":
        key_id = _key_id(args.key_id)
        grace = parse_duration(args.grace, "--grace")
        expires = None if args.expires is None else parse_expiry(args.expires, utc_now())
        return run_with_store(
            args, lambda store: _rotate(store, key_id, grace, expires, args.format)
        )
    raise UserError(f"unknown keys action {args.keys_action!r}")


# -- flag validation ----------------------------------------------------------------------------


def parse_scopes(text: str | None) -> tuple[str, ...]:
    """``chat,embeddings`` → ``("chat", "embeddings")``; None or empty: every scope."""
    if text is None:
        return ()
    scopes: list[str] = []
    for part in text.split(","):
        scope = part.strip()
        if not scope:
            continue
        if scope not in SCOPES:
            raise UserError(f"--scopes: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def _tenant(text: str) -> str:
    if not re.match(NAME_PATTERN, text):
        raise UserError(f"--tenant: invalid tenant name {text!r}")
    return text


def _name(text: str | None) -> str | None:
    if text is None:
        return None
    name = text.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise UserError("--name: must be 1 to 200 printable characters")
    return name


def _key_id(text: str) -> str:
    """A key id; a whole key is accepted too (only its id is used)."""
    presented = parse_key(text)
    if presented is not None:
        return presented.key_id
    if not is_key_id(text):
        raise UserError(
            f"invalid key id {text!r}: 12 characters of a-z and 0-9, as 'fulcrum keys list' shows"
        )
    return text


# -- actions ------------------------------------------------------------------------------------


async def _create(
    store: Store,
    tenant: str,
    name: str | None,
    scopes: tuple[str, ...],
    expires: datetime | None,
    output: str,
) -> int:
    new, record = await _insert_new_key(store, tenant, name, scopes, expires)
    _print_new_key(new, record, output)
    return 0


async def _insert_new_key(
    store: Store,
    tenant: str,
    name: str | None,
    scopes: tuple[str, ...],
    expires: datetime | None,
) -> tuple[NewKey, KeyRecord]:
    new = generate_key()
    record = KeyRecord(
        key_id=new.key_id,
        tenant=tenant,
        name=name,
        salt=new.salt,
        digest=new.digest,
        scopes=scopes,
        created_at=utc_now(),
        expires_at=expires,
    )
    await store.insert_key(record)
    return new, record


def _print_new_key(new: NewKey, record: KeyRecord, output: str) -> None:
    if output == "json":
        print(json.dumps({"key": new.token, **describe_key(record, utc_now())}, indent=2))
        return
    print(new.token)
    scopes = ",".join(record.scopes) or "all"
    print(
        f"Created key {record.key_id} for tenant {record.tenant} (name: {record.name or '-'}, "
        f"scopes: {scopes}, expires: {format_time(record.expires_at)}).\n"
        "Store it now: it cannot be shown again.",
        file=sys.stderr,
    )


def describe_key(record: KeyRecord, now: datetime) -> dict[str, Any]:
    """Everything about a key that may be shown (never the salt or the digest)."""
    return {
        "key_id": record.key_id,
        "tenant": record.tenant,
        "name": record.name,
        "scopes": list(record.scopes),
        "created_at": format_time(record.created_at),
        "expires_at": None if record.expires_at is None else format_time(record.expires_at),
        "revoked_at": None if record.revoked_at is None else format_time(record.revoked_at),
        "status": record.status(now),
    }


async def _list(store: Store, tenant: str | None, everything: bool, output: str) -> int:
    now = utc_now()
    records = await store.list_keys(tenant=tenant, include_revoked=everything)
    if not everything:
        records = [record for record in records if record.status(now) == "active"]
    if output == "json":
        print(json.dumps([describe_key(record, now) for record in records], indent=2))
        return 0
    rows = [
        [
            record.key_id,
            record.tenant,
            record.name or "-",
            ",".join(record.scopes) or "all",
            format_time(record.created_at),
            format_time(record.expires_at),
            record.status(now),
        ]
        for record in records
    ]
    headers = ["KEY_ID", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "STATUS"]
    print(render_table(headers, rows))
    return 0


async def _existing(store: Store, key_id: str) -> KeyRecord:
    record = await store.get_key(key_id)
    if record is None:
        raise UserError(f"no key with id {key_id}")
    return record


async def _revoke(store: Store, key_id: str) -> int:
    record = await _existing(store, key_id)
    if record.revoked_at is not None:
        print(f"Key {key_id} was already revoked at {format_time(record.revoked_at)}.")
        return 0
    if not await store.revoke_key(key_id, utc_now()):
        raise UserError(f"no key with id {key_id}")
    print(f"Revoked key {key_id} of tenant {record.tenant}.")
    return 0


async def _rotate(
    store: Store, key_id: str, grace: timedelta, expires: datetime | None, output: str
) -> int:
    old = await _existing(store, key_id)
    if old.revoked_at is not None:
        raise UserError(f"key {key_id} is revoked; create a new key instead")
    new, record = await _insert_new_key(store, old.tenant, old.name, old.scopes, expires)
    now = utc_now()
    if grace:
        await store.expire_key(key_id, now + grace)
    else:
        await store.revoke_key(key_id, now)
    retired = await _existing(store, key_id)
    _print_new_key(new, record, output)
    if retired.revoked_at is not None:
        fate = "is revoked"
    else:
        fate = f"keeps working until {format_time(retired.expires_at)}"
    print(f"The old key {key_id} {fate}.", file=sys.stderr)
    return 0
