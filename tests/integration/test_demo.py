"""`fulcrum demo` runs end to end: vLLM and Bedrock emulators, gateway, SDK, fallback."""

from __future__ import annotations

import subprocess

from tests.support.servers import free_port, fulcrum_command


def test_demo_runs_the_tour_and_exits() -> None:
    result = subprocess.run(
        fulcrum_command("demo", "--port", str(free_port()), "--no-serve"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "served by:  vllm-primary" in out
    assert "Embedding on vLLM: 16 dimensions" in out
    # One model is served by Bedrock through Converse/ConverseStream with SigV4, one by vLLM.
    assert "served by:  bedrock-haiku" in out
    assert "dimensions from Titan Text Embeddings V2" in out
    # Step 4 makes the primary not ready: the secondary serves, and the header says why.
    assert "served by:  vllm-secondary" in out
    assert "vllm-primary:http_503" in out or "health check had already moved it" in out
