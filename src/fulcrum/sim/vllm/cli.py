"""``fulcrum sim vllm``: options, their validation, and the event loop.

Defaults describe a small GPU (an 8B model on a 24 GB card): ~15 ms per output token at low
load, 0.25 ms per prompt token of prefill, 64k tokens of KV cache, 256 concurrent sequences.
``--no-latency`` removes every delay for benchmarks. See docs/emulator-vllm.md.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson

from fulcrum.errors import UserError, require
from fulcrum.sim.fault_fields import FaultError
from fulcrum.sim.vllm.faults import Faults, apply_update
from fulcrum.sim.vllm.settings import DEFAULT_VLLM_VERSION, Settings

DEFAULT_MODEL = "Qwen/Qwen3-0.6B"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the emulator's options on its sub-command parser."""
    d = Settings(model=DEFAULT_MODEL, served_model_names=(DEFAULT_MODEL,))
    net = parser.add_argument_group("serving")
    net.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    net.add_argument(
        "--served-model-name",
        nargs="+",
        metavar="NAME",
        help="names accepted in the `model` field; the first is reported (default: --model)",
    )
    net.add_argument("--host", default=d.host, help=f"listen address (default {d.host})")
    net.add_argument("--port", type=int, default=d.port, help=f"API port (default {d.port})")
    net.add_argument(
        "--admin-port",
        type=int,
        default=None,
        help="separate port for /admin/* (required for the refuse_connections fault)",
    )
    net.add_argument(
        "--vllm-version",
        default=DEFAULT_VLLM_VERSION,
        help=f"version reported by /version (default {DEFAULT_VLLM_VERSION})",
    )
    net.add_argument("--access-log", action="store_true", help="log every request to stdout")

    engine = parser.add_argument_group("engine and timing model")
    engine.add_argument(
        "--max-model-len",
        type=int,
        default=d.max_model_len,
        help=f"context length: prompt + max_tokens must fit (default {d.max_model_len})",
    )
    engine.add_argument(
        "--max-num-seqs",
        type=int,
        default=d.max_num_seqs,
        help=f"sequences running at once; the rest queue FIFO (default {d.max_num_seqs})",
    )
    engine.add_argument(
        "--kv-cache-tokens",
        type=int,
        default=d.kv_cache_tokens,
        help=f"KV-cache capacity in tokens (default {d.kv_cache_tokens})",
    )
    engine.add_argument(
        "--prefill-ms-per-token",
        type=float,
        default=d.prefill_ms_per_token,
        help=f"prefill time per prompt token (default {d.prefill_ms_per_token})",
    )
    engine.add_argument(
        "--itl-ms",
        type=float,
        default=d.itl_ms,
        help=f"inter-token latency with one sequence running (default {d.itl_ms})",
    )
    engine.add_argument(
        "--itl-ms-per-seq",
        type=float,
        default=d.itl_ms_per_seq,
        help=f"extra inter-token latency per other running sequence (default {d.itl_ms_per_seq})",
    )
    engine.add_argument(
        "--speed", type=float, default=d.speed, help="divide every delay by this factor"
    )
    engine.add_argument(
        "--no-latency", action="store_true", help="no delays at all (benchmark upstream)"
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--min-output-tokens",
        type=int,
        default=d.min_output_tokens,
        help=f"shortest natural reply, before EOS (default {d.min_output_tokens})",
    )
    output.add_argument(
        "--max-output-tokens",
        type=int,
        default=d.max_output_tokens,
        help=f"longest natural reply, before EOS (default {d.max_output_tokens})",
    )
    output.add_argument(
        "--embedding-dim",
        type=int,
        default=d.embedding_dim,
        help=f"embedding vector size (default {d.embedding_dim})",
    )
    output.add_argument(
        "--no-auto-tool-choice",
        dest="auto_tool_choice",
        action="store_false",
        help='reject tool_choice "auto" like vLLM without --enable-auto-tool-choice',
    )
    output.add_argument(
        "--faults", metavar="JSON", help="initial fault set, same JSON as POST /admin/faults"
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate the parsed options into :class:`Settings` (UserError on any bad value)."""
    names = tuple(args.served_model_name or [args.model])
    require(all(names), "--served-model-name: names must not be empty")
    for flag, port in (("--port", args.port), ("--admin-port", args.admin_port)):
        require(port is None or 0 < port < 65536, f"{flag} must be between 1 and 65535")
    require(args.admin_port != args.port, "--admin-port must differ from --port")
    require(args.max_model_len >= 2, "--max-model-len must be at least 2")
    require(args.max_num_seqs >= 1, "--max-num-seqs must be at least 1")
    require(args.kv_cache_tokens >= 1, "--kv-cache-tokens must be at least 1")
    for flag, value in (
        ("--prefill-ms-per-token", args.prefill_ms_per_token),
        ("--itl-ms", args.itl_ms),
        ("--itl-ms-per-seq", args.itl_ms_per_seq),
    ):
        require(value >= 0, f"{flag} must not be negative")
    require(args.speed > 0, "--speed must be positive")
    require(args.min_output_tokens >= 1, "--min-output-tokens must be at least 1")
    require(
        args.max_output_tokens >= args.min_output_tokens,
        "--max-output-tokens must be at least --min-output-tokens",
    )
    require(args.embedding_dim >= 1, "--embedding-dim must be at least 1")
    return Settings(
        model=args.model,
        served_model_names=names,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        kv_cache_tokens=args.kv_cache_tokens,
        prefill_ms_per_token=args.prefill_ms_per_token,
        itl_ms=args.itl_ms,
        itl_ms_per_seq=args.itl_ms_per_seq,
        speed=args.speed,
        no_latency=args.no_latency,
        min_output_tokens=args.min_output_tokens,
        max_output_tokens=args.max_output_tokens,
        embedding_dim=args.embedding_dim,
        auto_tool_choice=args.auto_tool_choice,
        vllm_version=args.vllm_version,
        access_log=args.access_log,
    )


def faults_from_args(args: argparse.Namespace) -> Faults | None:
    """The ``--faults`` JSON as a validated fault set (None when not given)."""
    if not args.faults:
        return None
    try:
        faults = apply_update(Faults(), orjson.loads(args.faults))
    except orjson.JSONDecodeError as exc:
        raise UserError(f"--faults: invalid JSON: {exc}") from None
    except FaultError as exc:
        raise UserError(f"--faults: {exc}") from None
    require(
        not faults.refuse_connections or args.admin_port is not None,
        "--faults: refuse_connections needs --admin-port",
    )
    return faults


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the process exit code."""
    settings = settings_from_args(args)
    faults = faults_from_args(args)
    from fulcrum.sim.vllm.server import serve

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it installs
        asyncio.run(serve(settings, faults))
    else:
        uvloop.run(serve(settings, faults))
    return 0
