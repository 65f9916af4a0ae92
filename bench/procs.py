"""Child servers of the benchmark: start pinned to a core, wait until ready, measure, stop.

Every server runs in its own session (process group) so that a server that forks workers
(LiteLLM can) is stopped as a whole — and only what this benchmark started is ever signalled,
always by the PID it got from ``Popen``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port the kernel considers free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cores() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def pin_prefix(core: int | None) -> list[str]:
    """``taskset -c CORE`` (so every thread of the child is pinned from exec on), if possible."""
    if core is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(core)]


class StartError(RuntimeError):
    """A server did not come up; the message is short enough for a table cell."""


@dataclass
class Server:
    """A child process serving HTTP on 127.0.0.1:port."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 1) -> str:
        """The last non-empty log lines, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return " | ".join(kept[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server's process group (created by us), then SIGKILL after ``grace``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=grace)
        # Workers that outlived their parent are still in the group we created.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark itself is killed (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    core: int | None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Start ``argv`` pinned to ``core`` with its output in ``log_dir/NAME.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*pin_prefix(core), *argv],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: stop() signals exactly that group
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return Server(name=name, process=process, port=port, log_path=log_path)


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Poll ``path`` until it answers 200; raise StartError if the process dies or time runs out."""
    url = server.url + path
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            tail = server.log_tail() or "no output"
            raise StartError(f"exited with code {code}: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} on {path}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(getattr(exc, "reason", exc))
        time.sleep(0.1)
    raise StartError(f"not ready after {timeout:.0f}s ({last})")


def _descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants, via /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with (
                    contextlib.suppress(OSError),
                    open(f"/proc/{current}/task/{task}/children") as fh,
                ):
                    todo.extend(int(child) for child in fh.read().split())
    return found


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Memory:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process tree, in MB."""

    peak_mb: float
    rss_mb: float
    processes: int


def memory(pid: int) -> Memory:
    """Memory of ``pid`` plus any worker processes it forked (summed, an upper bound)."""
    pids = _descendants(pid)
    peak = sum(_status_kb(p, "VmHWM") for p in pids)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    return Memory(peak_mb=peak / 1024, rss_mb=rss / 1024, processes=len(pids))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants so far (from /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{p}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    busy = sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))
    return busy / os.sysconf("SC_CLK_TCK")


class ForeignLoad:
    """How much CPU *other* processes took while a row was measured: a noise indicator.

    The machine is shared; a row measured while someone else runs a test suite is slower for
    reasons that have nothing to do with it. Busy time of the whole machine minus the time of
    this process and its children (upstream, system under test), as a share of all CPUs.
    """

    def __init__(self) -> None:
        self.start_wall = time.monotonic()
        self.start_busy = machine_busy_seconds()
        self.start_ours = cpu_seconds(os.getpid())

    def share(self) -> float:
        """Other processes' CPU since construction, as a fraction of the machine (0..1)."""
        wall = time.monotonic() - self.start_wall
        if wall <= 0:
            return 0.0
        busy = machine_busy_seconds() - self.start_busy
        ours = cpu_seconds(os.getpid()) - self.start_ours
        return max(0.0, busy - ours) / (wall * (os.cpu_count() or 1))
