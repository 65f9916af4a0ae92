"""What every store command shares: finding the store, running against it, printing tables."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fulcrum.config import StoreConfig, format_validation_error, interpolate_env, resolve_store
from fulcrum.errors import ConfigError
from fulcrum.store import open_store
from fulcrum.store.base import Store

DEFAULT_STORE_URL = "sqlite:///fulcrum.db"


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` / ``--store URL`` (the URL wins; default ``sqlite:///fulcrum.db``)."""
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="gateway configuration: use its store.url"
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"sqlite:///PATH or postgresql://user@host/db (default: {DEFAULT_STORE_URL})",
    )


def store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    if args.config:
        return store_url_from_config(args.config)
    return DEFAULT_STORE_URL


def store_url_from_config(path: str) -> str:
    """The ``store.url`` of a gateway configuration, resolved like ``fulcrum serve`` does.

    Only the ``store`` section is read and interpolated, so managing keys does not require
    the environment the gateway needs (upstream credentials, static keys).
    """
    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{file}: invalid YAML") from None
    section: Any = raw.get("store", {}) if isinstance(raw, dict) else {}
    section = interpolate_env(section, os.environ, "store")
    try:
        config = StoreConfig.model_validate(section if section is not None else {})
    except ValidationError as exc:
        message = format_validation_error(exc).removeprefix("<root>")
        raise ConfigError(f"store{'' if message.startswith(':') else '.'}{message}") from None
    return resolve_store(config, file.parent).url


def run_with_store(args: argparse.Namespace, command: Callable[[Store], Awaitable[int]]) -> int:
    """Open the store named by the arguments, run ``command`` on it, close it."""
    url = store_url(args)

    async def main() -> int:
        store = await open_store(url)
        try:
            return await command(store)
        finally:
            await store.close()

    return asyncio.run(main())


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces (no trailing blanks)."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *rows]
    ]
    return "\n".join(lines)
