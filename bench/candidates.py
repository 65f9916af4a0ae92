"""Stack candidates: the rows ``python -m bench.run --candidates`` adds, and what each one runs.

The question they answer: is aiohttp (server and client) + uvloop + orjson the fastest stack for
Fulcrum, or only the habitual one? Two kinds of rows, both compared with ``passthrough`` of the
same run:

* ``pt-*``: the pass-through proxy's design (forward bytes, parse nothing) on another server,
  client or event loop: :mod:`bench.passthrough` with ``--loop asyncio``, and :mod:`bench.stacks`.
  httpx, Starlette, uvicorn, httptools and granian come from ``.venv-candidates``, which
  ``make bench-candidates`` creates; the project's ``.venv`` never gets them.
* ``fulcrum-*``: the real gateway with one piece swapped, through :mod:`bench.variants`, from the
  project's venv (the same packages as the ``fulcrum`` row).

A candidate whose venv or package is missing raises :class:`~bench.procs.StartError`, which the
runner turns into an "unavailable: why" row.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import jsonshim, loadgen, procs, targets, upstream

CANDIDATES_VENV = ".venv-candidates"
PACKAGES = ("aiohttp", "uvloop", "httpx", "starlette", "uvicorn", "httptools", "granian")
INSTALL_HINT = "run `make bench-candidates`"


@dataclass(frozen=True)
class Stack:
    """What a row runs on: the four choices the candidates compare."""

    server: str
    client: str
    loop: str
    json: str

    def cells(self) -> tuple[str, str, str, str]:
        return (self.server, self.client, self.loop, self.json)


NO_JSON = "— (bytes only)"
STACKS: dict[str, Stack] = {
    "passthrough": Stack("aiohttp", "aiohttp", "uvloop", NO_JSON),
    "fulcrum": Stack("aiohttp", "aiohttp", "uvloop", "orjson"),
    "pt-aiohttp-asyncio": Stack("aiohttp", "aiohttp", "asyncio", NO_JSON),
    "pt-aiohttp+httpx": Stack("aiohttp", "httpx", "uvloop", NO_JSON),
    "pt-starlette-uvicorn": Stack("uvicorn + httptools, Starlette", "aiohttp", "uvloop", NO_JSON),
    "pt-granian": Stack("granian (ASGI), Starlette", "aiohttp", "uvloop", NO_JSON),
    "fulcrum-asyncio": Stack("aiohttp", "aiohttp", "asyncio", "orjson"),
    "fulcrum-stdjson": Stack("aiohttp", "aiohttp", "uvloop", "json (stdlib shim)"),
}

_VERSIONS_SCRIPT = (
    "import importlib.metadata as m, json\n"
    "found = {}\n"
    f"for name in {PACKAGES!r}:\n"
    "    try:\n"
    "        found[name] = m.version(name)\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "print(json.dumps(found))\n"
)


def venv_python(repo_root: Path) -> Path:
    return repo_root / CANDIDATES_VENV / "bin" / "python"


@functools.cache
def venv_versions(repo_root: Path) -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` in ``.venv-candidates`` ({} when it is missing)."""
    python = venv_python(repo_root)
    if not python.exists():
        return {}
    try:
        out = subprocess.run(
            [str(python), "-c", _VERSIONS_SCRIPT],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def describe_venv(repo_root: Path) -> str:
    """One header line: where the pass-through candidates' packages come from."""
    found = venv_versions(repo_root)
    if not found:
        return f"{CANDIDATES_VENV}: not found ({INSTALL_HINT}); its rows are unavailable"
    versions = ", ".join(f"{name} {found.get(name, 'not installed')}" for name in PACKAGES)
    return f"{CANDIDATES_VENV}: {versions}"


def _candidate_python(ctx: targets.Context, *packages: str) -> str:
    """The candidates venv's interpreter, once ``packages`` are known to be installed there."""
    python = venv_python(ctx.repo_root)
    if not python.exists():
        raise procs.StartError(f"{CANDIDATES_VENV} not found ({INSTALL_HINT})")
    found = venv_versions(ctx.repo_root)
    missing = [name for name in packages if name not in found]
    if missing:
        raise procs.StartError(
            f"{', '.join(missing)} not installed in {CANDIDATES_VENV} ({INSTALL_HINT})"
        )
    return str(python)


def _env(ctx: targets.Context) -> dict[str, str]:
    """``bench`` importable whatever the interpreter and working directory."""
    return {"PYTHONPATH": str(ctx.repo_root)}


def _start_pt_asyncio(ctx: targets.Context) -> procs.Server:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.passthrough", "--port", str(port)]
    argv += ["--upstream", ctx.upstream_url, "--loop", "asyncio"]
    return procs.start("pt-aiohttp-asyncio", argv, port, ctx.log_dir, ctx.proxy_core, _env(ctx))


def _start_pt_httpx(ctx: targets.Context) -> procs.Server:
    python = _candidate_python(ctx, "aiohttp", "uvloop", "httpx")
    port = procs.free_port()
    argv = [python, "-m", "bench.stacks", "aiohttp-httpx", "--port", str(port)]
    argv += ["--upstream", ctx.upstream_url]
    return procs.start("pt-aiohttp+httpx", argv, port, ctx.log_dir, ctx.proxy_core, _env(ctx))


def _start_pt_uvicorn(ctx: targets.Context) -> procs.Server:
    python = _candidate_python(ctx, "aiohttp", "starlette", "uvicorn")
    port = procs.free_port()
    argv = [python, "-m", "bench.stacks", "starlette-uvicorn", "--port", str(port)]
    argv += ["--upstream", ctx.upstream_url]
    return procs.start("pt-starlette-uvicorn", argv, port, ctx.log_dir, ctx.proxy_core, _env(ctx))


def granian_argv(python: str, port: int) -> list[str]:
    """One granian worker on uvloop serving :func:`bench.stacks.asgi_app_from_env`."""
    return [
        python,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--backlog",
        "1024",
        "--log-level",
        "warning",
        "--no-access-log",
        "--factory",
        "bench.stacks:asgi_app_from_env",
    ]


def _start_pt_granian(ctx: targets.Context) -> procs.Server:
    from bench.stacks import UPSTREAM_ENV

    python = _candidate_python(ctx, "aiohttp", "uvloop", "starlette", "granian")
    port = procs.free_port()
    env = {**_env(ctx), UPSTREAM_ENV: ctx.upstream_url}
    return procs.start(
        "pt-granian", granian_argv(python, port), port, ctx.log_dir, ctx.proxy_core, env
    )


def _fulcrum_variant(name: str, *flags: str) -> targets.Target:
    def start(ctx: targets.Context) -> procs.Server:
        port = procs.free_port()
        config = targets.write_yaml(
            ctx.work_dir / f"{name}.yaml",
            targets.fulcrum_config(port, ctx.upstream_url, ctx.model),
        )
        argv = [sys.executable, "-m", "bench.variants", "--config", str(config), *flags]
        return procs.start(name, argv, port, ctx.log_dir, ctx.proxy_core, _env(ctx))

    return targets.Target(name, start, ready_path="/healthz", ready_timeout=30.0)


TARGETS = [
    targets.Target("pt-aiohttp-asyncio", _start_pt_asyncio),
    targets.Target("pt-aiohttp+httpx", _start_pt_httpx),
    targets.Target("pt-starlette-uvicorn", _start_pt_uvicorn),
    targets.Target("pt-granian", _start_pt_granian),
    _fulcrum_variant("fulcrum-asyncio", "--loop", "asyncio"),
    _fulcrum_variant("fulcrum-stdjson", "--json", "stdjson"),
]


def stacks_of(names: list[str]) -> dict[str, tuple[str, str, str, str]]:
    """The stack columns of the rows among ``names`` that have one, in the order given."""
    return {name: STACKS[name].cells() for name in names if name in STACKS}


def notes(repo_root: Path) -> list[str]:
    """Caveats of this run's candidates (a fallback the row name does not say)."""
    found = venv_versions(repo_root)
    if found and "uvicorn" in found and "httptools" not in found:
        return ["httptools is not installed: pt-starlette-uvicorn ran uvicorn's h11 parser"]
    return []


def json_cost_us(
    loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes], rounds: int = 2000
) -> float:
    """µs of JSON work per non-streaming request, on the bench's own bodies, best of 5.

    What Fulcrum does with JSON for one such request: parse the client's body, serialise the
    body it sends upstream, parse the upstream's answer (for its usage). Timed in-process, so
    it is free of the cross-core noise of the proxied rows: a floor for what the JSON library
    can change per request.
    """
    request = loadgen.chat_body("bench-model")
    answer = upstream.Bodies("bench-model").completion
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            dumps(loads(request))
            loads(answer)
        best = min(best, (time.perf_counter() - started) / rounds)
    return best * 1e6


def json_note() -> str:
    """The report line comparing orjson with the stdlib shim on that per-request JSON work."""
    fast = json_cost_us(orjson.loads, orjson.dumps)
    slow = json_cost_us(jsonshim.loads, jsonshim.dumps)
    return (
        "JSON work of one non-streaming request (parse the client body, serialise the upstream "
        f"body, parse the answer), timed in-process on the bench's bodies: orjson {fast:.1f} µs, "
        f"stdlib json through the shim {slow:.1f} µs ({slow - fast:+.1f} µs per request)"
    )
