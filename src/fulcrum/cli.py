"""The `fulcrum` command: serve, demo, sim, keys, tenants, usage, econ.

Each sub-command lives in its own module and is imported only when chosen, so `fulcrum sim`
does not pay for the gateway's imports and vice versa. Every failure the user can cause ends
with a one-line message on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fulcrum.errors import UserError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fulcrum",
        description="OpenAI-compatible LLM gateway for Amazon Bedrock and vLLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", required=True, help="YAML configuration file")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")

    demo = sub.add_parser("demo", help="start emulators and the gateway, send example requests")
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.add_argument(
        "--no-serve", action="store_true", help="exit after the example requests (for scripts)"
    )

    sim = sub.add_parser("sim", help="run an upstream emulator")
    sim_sub = sim.add_subparsers(dest="emulator", required=True, metavar="EMULATOR")
    vllm = sim_sub.add_parser("vllm", help="emulate vLLM's OpenAI-compatible server")
    from fulcrum.sim.vllm.cli import add_arguments as add_vllm_arguments

    add_vllm_arguments(vllm)
    bedrock = sim_sub.add_parser("bedrock", help="emulate the Amazon Bedrock Runtime API")
    from fulcrum.sim.bedrock.cli import add_arguments as add_bedrock_arguments

    add_bedrock_arguments(bedrock)

    keys = sub.add_parser("keys", help="manage API keys in the store")
    from fulcrum.admin.keys import add_arguments as add_keys_arguments

    add_keys_arguments(keys)
    tenants = sub.add_parser("tenants", help="manage tenant policies in the store")
    from fulcrum.admin.tenants import add_arguments as add_tenants_arguments

    add_tenants_arguments(tenants)

    usage = sub.add_parser("usage", help="usage from the ledger: tokens, cost, latency")
    from fulcrum.admin.usage import add_arguments as add_usage_arguments

    add_usage_arguments(usage)

    econ = sub.add_parser("econ", help="the decision engine: cost, break-even, simulation")
    from fulcrum.econ.cli import add_arguments as add_econ_arguments

    add_econ_arguments(econ)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            from fulcrum.server import serve

            return serve(args.config, host=args.host, port=args.port)
        if args.command == "demo":
            from fulcrum.demo import run_demo

            return run_demo(port=args.port, keep_serving=not args.no_serve)
        if args.command == "sim" and args.emulator == "vllm":
            from fulcrum.sim.vllm.cli import run as run_vllm

            return run_vllm(args)
        if args.command == "sim" and args.emulator == "bedrock":
            from fulcrum.sim.bedrock.cli import run as run_bedrock

            return run_bedrock(args)
        if args.command == "keys":
            from fulcrum.admin.keys import run as run_keys

            return run_keys(args)
        if args.command == "tenants":
            from fulcrum.admin.tenants import run as run_tenants

            return run_tenants(args)
        if args.command == "usage":
            from fulcrum.admin.usage import run as run_usage

            return run_usage(args)
        if args.command == "econ":
            from fulcrum.econ.cli import run as run_econ

            return run_econ(args)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"fulcrum: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
