"""A sink that writes shipped segments into a directory tree, atomically and durably."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fulcrum.telemetry.audit.segment import fsync_directory


class DirectorySink:
    """Writes ``root/<name>`` via a temporary file and a rename: readers never see a partial
    object, and writing the same name again replaces it (idempotent)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, name: str) -> Path:
        """Where ``name`` (a relative, ``/``-separated object name) is stored."""
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"invalid object name {name!r}")
        return self.root.joinpath(*parts)

    def put(self, name: str, body: bytes) -> None:
        target = self.path_for(name)
        _make_dirs(target.parent)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with temp.open("wb") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(target.parent)


def _make_dirs(directory: Path) -> None:
    """``mkdir -p`` that also makes each new directory entry durable."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
        fsync_directory(path.parent)
