"""What Fulcrum's Bedrock path costs per request, taken apart and timed in-process.

The ``fulcrum-bedrock`` row measures the whole path end to end against ``bedrock-direct``; this
module times its pieces one by one with Fulcrum's own functions, on the bench's own request and
on replies fetched from the emulator of the same run: SigV4 signing
(:class:`fulcrum.providers.bedrock.transport.RequestSigner`), the OpenAI → Converse request and
Converse → ``chat.completion`` response translations, and for one stream the event-stream
decoding and the translation of its events into SSE chunks. In-process timings are free of the
cross-core noise of the end-to-end rows, so they say which piece dominates.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from bench import loadgen, targets

_ROUNDS = 5  # best of this many timed loops


@dataclass(frozen=True)
class Samples:
    """One Converse reply and one ConverseStream body, as the emulator sent them."""

    converse: bytes
    stream: bytes


def _post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def fetch_samples(emulator_url: str) -> Samples:
    """The replies to ``bedrock-direct``'s two requests (the emulator must be running)."""
    work = loadgen.bedrock_workload(targets.BEDROCK_MODEL)
    return Samples(
        converse=_post(emulator_url + work.path, work.body),
        stream=_post(emulator_url + work.stream_path, work.stream_body),
    )


def _best_us(step: Callable[[], object], loops: int) -> float:
    best = float("inf")
    for _ in range(_ROUNDS):
        started = time.perf_counter()
        for _ in range(loops):
            step()
        best = min(best, (time.perf_counter() - started) / loops)
    return best * 1e6


@dataclass(frozen=True)
class Costs:
    """µs per request (per stream for the last two), best of several loops."""

    sign: float
    request: float
    response: float
    decode: float
    encode: float
    events: int


def measure(samples: Samples, loops: int = 500) -> Costs:
    """Time each piece of the Bedrock path on ``samples`` (imports Fulcrum lazily)."""
    from fulcrum.config import BedrockAuth
    from fulcrum.providers.bedrock.responses import StreamTranslator, converse_to_chat
    from fulcrum.providers.bedrock.translate import chat_to_converse
    from fulcrum.providers.bedrock.transport import (
        EventStreamDecoder,
        RequestSigner,
        model_path,
        signed_url,
    )

    chat = orjson.loads(loadgen.chat_body("bench-model"))
    converse = orjson.dumps(chat_to_converse(chat))
    signer = RequestSigner(
        BedrockAuth(
            access_key_id=targets.EMULATOR_ACCESS_KEY,
            secret_access_key=targets.EMULATOR_SECRET_KEY,
        ),
        targets.BEDROCK_REGION,
    )
    url, _ = signed_url("http://127.0.0.1:8010", model_path(targets.BEDROCK_MODEL, "converse"))
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def sign_all() -> float:
        await signer.headers(url, converse, headers)  # resolves the credentials once
        best = float("inf")
        for _ in range(_ROUNDS):
            started = time.perf_counter()
            for _ in range(loops):
                await signer.headers(url, converse, headers)
            best = min(best, (time.perf_counter() - started) / loops)
        return best * 1e6

    sign = asyncio.run(sign_all())
    request = _best_us(lambda: orjson.dumps(chat_to_converse(chat)), loops)

    def response() -> bytes:
        completion, _ = converse_to_chat(
            orjson.loads(samples.converse), completion_id="chatcmpl-x", created=0, model="m"
        )
        return orjson.dumps(completion)

    events = list(EventStreamDecoder().feed(samples.stream))
    decode = _best_us(lambda: list(EventStreamDecoder().feed(samples.stream)), loops // 5)

    def encode() -> bytes:
        translator = StreamTranslator(completion_id="chatcmpl-x", created=0, model="m")
        out: list[bytes] = []
        for event in events:
            for chunk in translator.translate(event.name, event.payload):
                out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        return b"".join(out)

    return Costs(
        sign=sign,
        request=request,
        response=_best_us(response, loops),
        decode=decode,
        encode=_best_us(encode, loops // 5),
        events=len(events),
    )


def note(costs: Costs) -> str:
    """The report line with the breakdown."""
    per_event = (costs.decode + costs.encode) / costs.events if costs.events else 0.0
    return (
        "Pieces of the Bedrock path timed in-process with Fulcrum's own functions (best of "
        f"{_ROUNDS}, in the benchmark process): SigV4 signing (`RequestSigner.headers`, botocore) "
        f"{costs.sign:.0f} µs per request; OpenAI → Converse request {costs.request:.1f} µs; "
        f"Converse → `chat.completion` {costs.response:.1f} µs; for one {costs.events}-event "
        f"stream, event-stream decoding (botocore, CRCs) {costs.decode:.0f} µs and translation "
        f"+ SSE encoding {costs.encode:.0f} µs ({per_event:.1f} µs per event)"
    )


def cost_notes(emulator_url: str) -> list[str]:
    """The breakdown note, or why it could not be measured (the report never fails for it)."""
    try:
        return [note(measure(fetch_samples(emulator_url)))]
    except Exception as exc:  # an optional note: whatever broke, the tables still stand
        return [f"the Bedrock path's pieces could not be timed in-process: {exc!r}"]
