"""``fulcrum sim bedrock``: options, their validation, and the event loop.

Defaults: the built-in catalogue (Claude 3 Haiku, Claude 3.5 Sonnet, Llama 3.1 8B, Titan Text
Embeddings V2, their ``us.``/``eu.``/``global.`` inference profiles, two Provisioned Throughput
ARNs), SigV4 with the documented test credentials, the catalogue's timing model.
``--no-latency --no-auth`` makes it a lean benchmark upstream. See docs/emulator-bedrock.md.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson

from fulcrum.errors import UserError, require
from fulcrum.sim.bedrock.catalog import CatalogError, default_catalog, load_catalog
from fulcrum.sim.bedrock.faults import Faults, apply_update
from fulcrum.sim.bedrock.settings import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_PORT,
    DEFAULT_SECRET_KEY,
    Settings,
)
from fulcrum.sim.fault_fields import FaultError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the emulator's options on its sub-command parser."""
    d = Settings()
    net = parser.add_argument_group("serving")
    net.add_argument("--host", default=d.host, help=f"listen address (default {d.host})")
    net.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"API port (default {DEFAULT_PORT})"
    )
    net.add_argument(
        "--admin-port", type=int, default=None, help="also serve /admin/* on this port"
    )
    net.add_argument("--access-log", action="store_true", help="log every request to stdout")
    net.add_argument(
        "--catalog",
        metavar="FILE",
        help="model catalogue (YAML or JSON) replacing the built-in one",
    )

    auth = parser.add_argument_group("authentication")
    auth.add_argument(
        "--access-key",
        default=DEFAULT_ACCESS_KEY,
        help=f"AWS access key id accepted for SigV4 (default {DEFAULT_ACCESS_KEY})",
    )
    auth.add_argument(
        "--secret-key",
        default=DEFAULT_SECRET_KEY,
        help="AWS secret access key (default: the documented test secret)",
    )
    auth.add_argument(
        "--region",
        default=None,
        help="require this region in SigV4 credential scopes (default: any region)",
    )
    auth.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept 'Authorization: Bearer KEY' (a Bedrock API key); repeatable",
    )
    auth.add_argument("--no-auth", action="store_true", help="accept every request unchecked")
    auth.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve the API over HTTPS with this certificate chain (admin port stays HTTP)",
    )
    auth.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")

    timing = parser.add_argument_group("timing and output")
    timing.add_argument(
        "--speed", type=float, default=d.speed, help="divide every delay by this factor"
    )
    timing.add_argument(
        "--no-latency", action="store_true", help="no delays at all (benchmark upstream)"
    )
    timing.add_argument(
        "--min-output-tokens",
        type=int,
        default=d.min_output_tokens,
        help=f"shortest natural reply (default {d.min_output_tokens})",
    )
    timing.add_argument(
        "--max-output-tokens",
        type=int,
        default=d.max_output_tokens,
        help=f"longest natural reply (default {d.max_output_tokens})",
    )

    quotas = parser.add_argument_group("quotas and faults")
    quotas.add_argument(
        "--on-demand-rpm",
        type=int,
        default=None,
        help="requests/minute per on-demand model id or profile (default: unlimited)",
    )
    quotas.add_argument(
        "--on-demand-tpm",
        type=int,
        default=None,
        help="tokens/minute per on-demand model id or profile (default: unlimited)",
    )
    quotas.add_argument(
        "--faults", metavar="JSON", help="initial fault set, same JSON as POST /admin/faults"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate the parsed options into :class:`Settings` (UserError on any bad value)."""
    for flag, port in (("--port", args.port), ("--admin-port", args.admin_port)):
        require(port is None or 0 < port < 65536, f"{flag} must be between 1 and 65535")
    require(args.admin_port != args.port, "--admin-port must differ from --port")
    require(args.speed > 0, "--speed must be positive")
    require(args.min_output_tokens >= 1, "--min-output-tokens must be at least 1")
    require(
        args.max_output_tokens >= args.min_output_tokens,
        "--max-output-tokens must be at least --min-output-tokens",
    )
    for flag, value in (
        ("--on-demand-rpm", args.on_demand_rpm),
        ("--on-demand-tpm", args.on_demand_tpm),
    ):
        require(value is None or value >= 1, f"{flag} must be at least 1")
    require(bool(args.access_key), "--access-key must not be empty")
    require(bool(args.secret_key), "--secret-key must not be empty")
    require(all(args.api_key), "--api-key must not be empty")
    require(args.tls_key is None or args.tls_cert is not None, "--tls-key needs --tls-cert")
    try:
        catalog = load_catalog(args.catalog) if args.catalog else default_catalog()
    except CatalogError as exc:
        raise UserError(f"--catalog: {exc}") from None
    catalog = catalog.with_default_quotas(args.on_demand_rpm, args.on_demand_tpm)
    return Settings(
        catalog=catalog,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        auth=not args.no_auth,
        access_key=args.access_key,
        secret_key=args.secret_key,
        region=args.region,
        api_keys=tuple(args.api_key),
        speed=args.speed,
        no_latency=args.no_latency,
        min_output_tokens=args.min_output_tokens,
        max_output_tokens=args.max_output_tokens,
        access_log=args.access_log,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def faults_from_args(args: argparse.Namespace) -> Faults | None:
    """The ``--faults`` JSON as a validated fault set (None when not given)."""
    if not args.faults:
        return None
    try:
        return apply_update(Faults(), orjson.loads(args.faults))
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--faults: invalid JSON: {exc}") from None
    except FaultError as exc:
        raise UserError(f"--faults: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the process exit code."""
    settings = settings_from_args(args)
    faults = faults_from_args(args)
    from fulcrum.sim.bedrock.server import serve

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it installs
        asyncio.run(serve(settings, faults))
    else:
        uvloop.run(serve(settings, faults))
    return 0
