"""Emulator processes for the integration tests, started on free ports and stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.sim.helpers import Sim, http
from tests.support.servers import free_port, fulcrum_command, start_server

MODEL = "test/sim-model"


def start_sim(tmp_path_factory: pytest.TempPathFactory, *extra: str, admin: bool = True) -> Sim:
    port = free_port()
    argv = ["sim", "vllm", "--port", str(port), "--model", MODEL, *extra]
    admin_url = None
    if admin:
        admin_port = free_port()
        argv += ["--admin-port", str(admin_port)]
        admin_url = f"http://127.0.0.1:{admin_port}"
    server = start_server(
        fulcrum_command(*argv), port, tmp_path_factory.mktemp("sim-logs"), ready_path="/health"
    )
    return Sim(server, admin_url)


@pytest.fixture(scope="module", params=["paced", "no-latency"])
def vllm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """An emulator with tiny delays, and one with none (both code paths must agree)."""
    extra = (
        ("--no-latency",)
        if request.param == "no-latency"
        else ("--itl-ms", "0.5", "--prefill-ms-per-token", "0.01")
    )
    sim = start_sim(tmp_path_factory, *extra, "--max-model-len", "512")
    try:
        yield sim
    finally:
        sim.server.stop()


@pytest.fixture(scope="module")
def slow_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """Four sequences at a time and 50 ms per token: requests stay in flight long enough."""
    sim = start_sim(
        tmp_path_factory,
        "--max-num-seqs",
        "4",
        "--itl-ms",
        "50",
        "--itl-ms-per-seq",
        "0",
        "--prefill-ms-per-token",
        "0",
    )
    try:
        yield sim
    finally:
        sim.server.stop()


@pytest.fixture
def faulty(slow_vllm: Sim) -> Iterator[Sim]:
    """``slow_vllm`` with its fault set reset after the test, whatever happened."""
    try:
        yield slow_vllm
    finally:
        assert slow_vllm.admin_url is not None
        http("DELETE", f"{slow_vllm.admin_url}/admin/faults")
