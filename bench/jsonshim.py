"""A stand-in for ``orjson`` over the standard library's ``json``: the ``fulcrum-stdjson`` row.

:mod:`bench.variants` puts this module into ``sys.modules["orjson"]`` before Fulcrum is
imported, so every ``orjson.loads`` / ``orjson.dumps`` in the gateway runs on ``json`` instead.
It offers what Fulcrum uses of orjson (``grep -rn "orjson\\." src/fulcrum``) with orjson's
contract, no more:

* ``dumps(obj, default=None, option=None) -> bytes``: compact (no spaces), UTF-8, non-ASCII
  kept as is; ``option=OPT_SORT_KEYS`` sorts keys (the vLLM emulator uses it);
* ``loads(bytes | bytearray | memoryview | str)``: input that is not UTF-8 raises
  ``JSONDecodeError`` like orjson (``json`` would raise ``UnicodeDecodeError``);
* ``JSONDecodeError``: a ``ValueError``, as orjson's is.

Must not import orjson itself, nor anything that does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

JSONDecodeError = json.JSONDecodeError
OPT_SORT_KEYS = 1 << 5  # the value orjson gives it; the only option supported

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_DECODER = json.JSONDecoder()


def dumps(
    obj: Any, default: Callable[[Any], Any] | None = None, option: int | None = None
) -> bytes:
    """Serialise ``obj`` to compact UTF-8 JSON bytes."""
    if option and option & ~OPT_SORT_KEYS:
        raise TypeError(f"jsonshim supports only OPT_SORT_KEYS, got option={option}")
    if default is None and not option:
        return _ENCODER.encode(obj).encode("utf-8")
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        separators=(",", ":"),
        default=default,
        sort_keys=bool(option and option & OPT_SORT_KEYS),
    )
    return encoder.encode(obj).encode("utf-8")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON from UTF-8 bytes or a string."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONDecodeError(f"input is not valid UTF-8: {exc.reason}", "", 0) from None
    return _DECODER.decode(text)


def install() -> None:
    """Make ``import orjson`` give this module; refuses if the real orjson is already loaded."""
    current = sys.modules.get("orjson")
    if current is not None and current is not sys.modules[__name__]:
        raise RuntimeError("the real orjson is already imported; install the shim first")
    sys.modules["orjson"] = sys.modules[__name__]
