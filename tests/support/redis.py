"""Fixtures for a real redis (see tests/support/services.py for skip/fail rules).

- ``redis_url``: the machine's Redis (``FULCRUM_TEST_REDIS_URL``, default 127.0.0.1:6379).
  Tests share it, so each one gets its own key prefix (``redis_prefix``) and its keys are
  deleted afterwards by that prefix; nothing here ever flushes a database.
- ``redis_config``: a ``RedisConfig`` for that server with the test's prefix.
- ``redis_server``: a throwaway ``redis-server`` child process on a free port that a test may
  stop (SIGTERM or SIGKILL, by PID) and start again on the same port mid-test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fulcrum.config import RedisConfig
from tests.support.servers import free_port
from tests.support.services import service_missing

DEFAULT_URL = "redis://127.0.0.1:6379/0"
READY_TIMEOUT = 10.0


def _reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def _shared_redis_url() -> str:
    url = os.environ.get("FULCRUM_TEST_REDIS_URL", DEFAULT_URL)
    if not _reachable(url):
        service_missing(f"no Redis answers at {url}")
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test (or earlier run) uses."""
    return f"fulcrum-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_url(_shared_redis_url: str, redis_prefix: str) -> Iterator[str]:
    """The machine's Redis; the keys under this test's ``redis_prefix`` are deleted afterwards."""
    yield _shared_redis_url
    client = redis.Redis.from_url(_shared_redis_url)
    try:
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def redis_config(redis_url: str, redis_prefix: str) -> RedisConfig:
    return RedisConfig(url=redis_url, key_prefix=redis_prefix)


class RedisServer:
    """A ``redis-server`` child process on a fixed port: start, stop, kill, start again."""

    def __init__(self, binary: str, port: int, log_dir: Path) -> None:
        self.binary = binary
        self.port = port
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        if self.running:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.log_dir),
        ]
        with (self.log_dir / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while not _reachable(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server on port {self.port} did not answer")
            time.sleep(0.02)  # readiness poll interval, bounded by the deadline

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this server (only this PID); SIGKILL simulates a crash."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server; stopped by its PID at teardown whatever the test did."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        service_missing("redis-server is not installed")
        raise AssertionError("unreachable")
    server = RedisServer(binary, free_port(), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
