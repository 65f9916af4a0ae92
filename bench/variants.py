"""Fulcrum with one piece of its stack swapped: the ``fulcrum-*`` stack-candidate rows.

It starts the real gateway the way ``fulcrum serve`` does — ``load_config``, ``build_app``,
``start_site``, ``run_until_stopped`` from :mod:`fulcrum.server` — except for the piece asked for:

* ``--loop asyncio``: the stock asyncio event loop instead of uvloop (``fulcrum serve`` installs
  uvloop; this launcher never does unless ``--loop uvloop``);
* ``--json stdjson``: :mod:`bench.jsonshim` (the standard library's ``json``) is installed as
  ``orjson`` in ``sys.modules`` before anything of Fulcrum is imported.

With the defaults (``--loop uvloop --json orjson``) it is the ``fulcrum`` row through another
door, which is how the launcher itself was checked. Nothing here imports orjson or Fulcrum at
module level: the shim must come first.

Run: ``python -m bench.variants --config fulcrum.yaml --json stdjson``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", required=True, help="gateway YAML configuration")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--json", choices=("orjson", "stdjson"), default="orjson")
    args = parser.parse_args(argv)

    if args.json == "stdjson":
        from bench import jsonshim

        jsonshim.install()

    from fulcrum.app import build_app
    from fulcrum.config import load_config
    from fulcrum.server import configure_logging, run_until_stopped, start_site

    json_module = sys.modules["orjson"].__name__
    if (args.json == "stdjson") != (json_module == "bench.jsonshim"):
        raise SystemExit(f"bench.variants: orjson is {json_module}, wanted {args.json}")
    config = load_config(args.config)
    configure_logging()
    log = logging.getLogger("fulcrum")

    async def serve() -> None:
        app = build_app(config)
        host, port = config.server.host, config.server.port
        runner = await start_site(app, host, port, config.server.access_log)
        loop = type(asyncio.get_running_loop())
        log.info(
            "fulcrum variant listening on http://%s:%d (loop %s.%s, orjson = %s)",
            host,
            port,
            loop.__module__,
            loop.__qualname__,
            json_module,
        )
        await run_until_stopped([runner])

    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
