"""`fulcrum demo`: vLLM and Bedrock emulators, the gateway in front, the official SDK driving.

The emulators run as child processes (the same `fulcrum sim vllm` / `fulcrum sim bedrock` a
user would start); the gateway runs in this process. Everything listens on 127.0.0.1 only
and every child is stopped by its PID on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson

from fulcrum.app import build_app
from fulcrum.config import GatewayConfig, parse_config
from fulcrum.errors import UserError
from fulcrum.server import configure_logging, install_fast_loop, run_until_stopped, start_site

DEMO_KEY = "sk-fulcrum-demo-key"
UPSTREAM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
ALIAS = "llama-3.1-8b"
BEDROCK_ALIAS = "claude-3-haiku"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
EMBEDDING_ALIAS = "titan-embed"
# The Bedrock emulator's documented default credentials (docs/emulator-bedrock.md).
SIM_ACCESS_KEY = "AKIDFULCRUMSIM"
SIM_SECRET_KEY = "fulcrum-sim-secret-access-key-not-a-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(
    gateway_port: int, primary: int, secondary: int, bedrock: int, data_dir: str
) -> GatewayConfig:
    """The demo's configuration: one alias over two emulated vLLM servers, two on Bedrock.

    Its store (keys, tenants) lives in ``data_dir``, a temporary directory: the demo leaves
    nothing behind in the directory it was started from.
    """

    def deployment(port: int) -> dict[str, Any]:
        return {
            "provider": "openai",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": UPSTREAM_MODEL,
            "timeouts": {"connect": 2, "ttft": 30, "total": 120},
            "health_check": {"interval": 1},
            "tags": {
                "region": "sa-east-1",
                "self_hosted": True,
                "cost_per_1k_input": 0.0001,
                "cost_per_1k_output": 0.0002,
            },
        }

    def on_bedrock(model: str, **extra: Any) -> dict[str, Any]:
        return {
            "provider": "bedrock",
            "region": "us-east-1",
            "model": model,
            "endpoint_url": f"http://127.0.0.1:{bedrock}",
            "auth": {"access_key_id": SIM_ACCESS_KEY, "secret_access_key": SIM_SECRET_KEY},
            **extra,
        }

    raw = {
        "server": {"host": "127.0.0.1", "port": gateway_port},
        "deployments": {
            "vllm-primary": deployment(primary),
            "vllm-secondary": deployment(secondary),
            "bedrock-haiku": on_bedrock(
                BEDROCK_MODEL,
                tags={"cost_per_1k_input": 0.00025, "cost_per_1k_output": 0.00125},
            ),
            "bedrock-titan": on_bedrock("amazon.titan-embed-text-v2:0", embeddings=True),
        },
        "models": {
            ALIAS: ["vllm-primary", "vllm-secondary"],
            BEDROCK_ALIAS: ["bedrock-haiku"],
            EMBEDDING_ALIAS: ["bedrock-titan"],
        },
        "auth": [{"key": DEMO_KEY, "tenant": "demo", "name": "demo-key"}],
        "tenants": {"demo": {"limits": {"rpm": 600, "tpm": 200_000}}},
        "store": {"url": f"sqlite:///{data_dir}/fulcrum.db"},
    }
    return parse_config(raw, environ={})


@contextlib.contextmanager
def emulators(vllm_ports: list[int], bedrock_port: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the vLLM and Bedrock emulators; stop exactly those processes afterwards."""
    commands = [
        (["vllm", "--port", str(port), "--model", UPSTREAM_MODEL], f"{port}/health")
        for port in vllm_ports
    ]
    commands.append((["bedrock", "--port", str(bedrock_port)], f"{bedrock_port}/ping"))
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "fulcrum.cli", "sim", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for args, _ in commands
    ]
    try:
        for process, (_, ready) in zip(processes, commands, strict=True):
            _wait_ready(f"http://127.0.0.1:{ready}", process)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"an emulator exited early (code {process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (OSError, urllib.error.URLError):
            time.sleep(0.05)
    raise UserError(f"an emulator did not become ready at {url}")


def _admin(port: int, method: str, faults: dict[str, Any] | None = None) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/admin/faults",
        data=orjson.dumps(faults) if faults is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass


async def _tour(base_url: str, primary_port: int) -> None:
    """Send a few requests through the official SDK and narrate what happened."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key=DEMO_KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": "Say hello to the platform team."}]

    raw = await client.chat.completions.with_raw_response.create(
        model=ALIAS, messages=messages, max_tokens=24
    )
    chat = raw.parse()
    print("\n1. Chat completion through the gateway")
    print(f"   content:    {chat.choices[0].message.content!r}")
    print(f"   usage:      {chat.usage.prompt_tokens if chat.usage else '?'} in, "
          f"{chat.usage.completion_tokens if chat.usage else '?'} out")  # fmt: skip
    print(f"   served by:  {raw.headers.get('x-fulcrum-deployment')} "
          f"(request id {raw.headers.get('x-request-id')})")  # fmt: skip
    print(f"   limits:     tenant `demo` has "
          f"{raw.headers.get('x-ratelimit-remaining-requests')} of "
          f"{raw.headers.get('x-ratelimit-limit-requests')} requests and "
          f"{raw.headers.get('x-ratelimit-remaining-tokens')} tokens left this minute")  # fmt: skip

    print("\n2. Streaming (tokens as they arrive)")
    started = time.monotonic()
    first: float | None = None
    stream = await client.chat.completions.create(
        model=ALIAS, messages=messages, max_tokens=24, stream=True
    )
    pieces: list[str] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.monotonic() - started
            pieces.append(chunk.choices[0].delta.content)
    print(f"   streamed:   {''.join(pieces)!r}")
    if first is not None:
        print(f"   first token after {first * 1000:.0f} ms, {len(pieces)} chunks")

    embedding = await client.embeddings.create(model=ALIAS, input="hybrid fleets")
    print(f"\n3. Embedding on vLLM: {len(embedding.data[0].embedding)} dimensions")

    print(f"\n4. The same SDK, another backend: `{BEDROCK_ALIAS}` is served by Bedrock (Converse)")
    raw = await client.chat.completions.with_raw_response.create(
        model=BEDROCK_ALIAS, messages=messages, max_tokens=24
    )
    bedrock_chat = raw.parse()
    print(f"   content:    {bedrock_chat.choices[0].message.content!r}")
    print(f"   served by:  {raw.headers.get('x-fulcrum-deployment')}")
    pieces = []
    stream = await client.chat.completions.create(
        model=BEDROCK_ALIAS, messages=messages, max_tokens=24, stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    print(f"   streamed:   {len(pieces)} chunks translated from ConverseStream's event stream")
    titan = await client.embeddings.create(model=EMBEDDING_ALIAS, input="hybrid fleets")
    print(f"   embedding:  {len(titan.data[0].embedding)} dimensions from Titan Text Embeddings V2")

    print("\n5. Fallback: the primary vLLM is made 'not ready' (as during a cold start)")
    _admin(primary_port, "POST", {"not_ready": True})
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=ALIAS, messages=messages, max_tokens=8
        )
        print(f"   served by:  {raw.headers.get('x-fulcrum-deployment')}")
        fallback = raw.headers.get("x-fulcrum-fallback") or "(health check had already moved it)"
        print(f"   fallback:   {fallback}")
    finally:
        _admin(primary_port, "DELETE")
    await client.close()


def _print_paste_lines(base_url: str) -> None:
    print(
        f"""
The gateway keeps serving at {base_url} until Ctrl-C. Paste these:

  curl -s {base_url}/chat/completions \\
    -H 'Authorization: Bearer {DEMO_KEY}' -H 'Content-Type: application/json' \\
    -d '{{"model": "{ALIAS}", "messages": [{{"role": "user", "content": "hi"}}]}}'

  curl -s {base_url.removesuffix("/v1")}/metrics | grep ^fulcrum_

  python -c "from openai import OpenAI
c = OpenAI(base_url='{base_url}', api_key='{DEMO_KEY}')
r = c.chat.completions.create(model='{ALIAS}', messages=[{{'role': 'user', 'content': 'hi'}}])
print(r.choices[0].message.content)"
""",
        flush=True,
    )


def run_demo(port: int = 8080, keep_serving: bool = True) -> int:
    """Entry point of `fulcrum demo`."""
    configure_logging()
    for noisy in ("httpx", "httpx2"):  # the SDK's per-request log lines drown the narration
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_fast_loop()
    primary, secondary, bedrock = _free_port(), _free_port(), _free_port()
    data_dir = tempfile.TemporaryDirectory(prefix="fulcrum-demo-")
    with data_dir:
        return _run(port, keep_serving, primary, secondary, bedrock, data_dir.name)


def _run(
    port: int, keep_serving: bool, primary: int, secondary: int, bedrock: int, data_dir: str
) -> int:
    config = demo_config(port, primary, secondary, bedrock, data_dir)
    base_url = f"http://127.0.0.1:{port}/v1"
    print(
        f"Starting two vLLM emulators on :{primary} and :{secondary}"
        f" and a Bedrock Runtime emulator on :{bedrock} …",
        flush=True,
    )
    with emulators([primary, secondary], bedrock):

        async def main() -> None:
            runner = await start_site(build_app(config), "127.0.0.1", port)
            print(f"Fulcrum listening on http://127.0.0.1:{port}", flush=True)
            try:
                await _tour(base_url, primary)
            except BaseException:
                await runner.cleanup()
                raise
            if not keep_serving:
                await runner.cleanup()
                return
            _print_paste_lines(base_url)
            await run_until_stopped([runner])

        asyncio.run(main())
    return 0
