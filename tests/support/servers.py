"""Start real servers as child processes on free ports, and stop exactly those processes.

Tests talk to Fulcrum and its emulators over real sockets; these helpers own the lifecycle so
that every test ends only the processes it started (by PID), and never sleeps blindly: readiness
is polled on an HTTP URL with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """Ask the kernel for a free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A child process serving HTTP on 127.0.0.1:port."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate this process (and only it), escalating to SIGKILL after a deadline."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Poll ``url`` until it answers with any HTTP status; fail fast if the process died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is listening
        except (OSError, urllib.error.URLError) as exc:
            last_error = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


def fulcrum_command(*args: str) -> list[str]:
    """The `fulcrum` CLI, run with the interpreter of the test session."""
    return [sys.executable, "-m", "fulcrum.cli", *args]


def start_server(
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    ready_path: str = "/healthz",
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> ServerProcess:
    """Start ``argv`` (which must listen on ``port``) and wait until ``ready_path`` answers."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    log_file = log_path.open("wb")
    full_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(list(argv), stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    log_file.close()
    server = ServerProcess(process=process, port=port, log_path=log_path)
    try:
        wait_http_ok(f"{server.url}{ready_path}", process, timeout)
    except Exception as exc:
        server.stop()
        raise RuntimeError(f"{' '.join(argv)} did not start: {exc}\n{server.log()}") from exc
    return server


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """Context manager that stops ``server`` on exit."""
    try:
        yield server
    finally:
        server.stop()
