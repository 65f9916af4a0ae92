"""HTTP surface of the emulator: Bedrock Runtime's routes on the main app, control on admin.

Routing works on the raw request target: ``POST /model/{modelId}/{operation}`` where the model
id arrives percent-encoded (ARNs contain ``:`` and ``/``, sent as ``%3A`` and ``%2F``), so the
path is split on the raw ``/`` and only then is the id unquoted — an encoded ``/`` never splits
the route. Anything else is AWS's ``UnknownOperationException`` (404).

One inference request goes: read body → count it in the stats → authenticate (SigV4 or bearer
key) → resolve the model id → run the faults → validate → admit against quotas/capacity →
decide the whole reply → release it on the timing model's schedule → settle the quota with the
real token count.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, defaultdict
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from fulcrum.sim.bedrock import wire
from fulcrum.sim.bedrock.auth import Authenticator
from fulcrum.sim.bedrock.capacity import REQUESTS, Entry, Limiter, SlidingWindow
from fulcrum.sim.bedrock.catalog import EMBEDDING, Target
from fulcrum.sim.bedrock.errors import (
    DEFAULT_MESSAGES,
    JSON_CONTENT_TYPE,
    STREAM_EXCEPTIONS,
    TOO_MANY_REQUESTS,
    TOO_MANY_TOKENS,
    BedrockError,
    error_response,
    new_request_id,
    validation,
)
from fulcrum.sim.bedrock.eventstream import CONTENT_TYPE as EVENTSTREAM_CONTENT_TYPE
from fulcrum.sim.bedrock.eventstream import exception_frame
from fulcrum.sim.bedrock.faults import Faults, FaultState, apply_update
from fulcrum.sim.bedrock.generation import binary_embedding, embedding
from fulcrum.sim.bedrock.planner import Reply, plan_reply
from fulcrum.sim.bedrock.promptcache import PromptCache
from fulcrum.sim.bedrock.protocol import ConverseRequest, parse_converse, parse_titan_embedding
from fulcrum.sim.bedrock.settings import Settings
from fulcrum.sim.bedrock.timing import Timing, sleep_until
from fulcrum.sim.bedrock.tokenizer import count_tokens
from fulcrum.sim.fault_fields import FaultError

CLIENT_MAX_SIZE = 32 * 1024 * 1024
REPLY_CACHE_SIZE = 4096
OPERATIONS = {"converse": "Converse", "converse-stream": "ConverseStream", "invoke": "InvokeModel"}
INVOKE_CHAT_UNSUPPORTED = (
    "The emulator implements InvokeModel for embedding models only; use Converse for this model."
)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)


class Stats:
    """Request counts per model id and operation, and error counts per type."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, defaultdict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.total = 0

    def count(self, model_id: str, operation: str) -> None:
        self.requests[model_id][operation] += 1
        self.total += 1

    def error(self, name: str) -> None:
        self.errors[name] += 1

    def reset(self) -> None:
        self.requests.clear()
        self.errors.clear()
        self.total = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": {model: dict(ops) for model, ops in self.requests.items()},
            "errors": dict(self.errors),
        }


class _Charge:
    """A quota charge to settle once the request's real token count is known."""

    __slots__ = ("entry", "window")

    def __init__(self, window: SlidingWindow, entry: Entry) -> None:
        self.window = window
        self.entry = entry

    def settle(self, tokens: int) -> None:
        self.window.settle(self.entry, tokens)


class BedrockSim:
    """State and handlers of one emulated Bedrock Runtime endpoint."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = settings.catalog
        self.authenticator = (
            Authenticator(
                settings.access_key, settings.secret_key, settings.region, settings.api_keys
            )
            if settings.auth
            else None
        )
        self.timing = Timing(settings.speed, settings.no_latency)
        self.faults = FaultState()
        self.limiter = Limiter()
        self.limits: dict[str, tuple[int | None, int | None]] = {}
        self.prompt_cache = PromptCache()
        self.stats = Stats()
        self._rng = random.Random()
        self._replies: OrderedDict[
            tuple[int, int | None, tuple[str, ...]], tuple[Reply, tuple[wire.Stem, ...]]
        ] = OrderedDict()

    # ----------------------------------------------------------------- apps

    def main_app(self) -> web.Application:
        """Bedrock Runtime's routes, ``/ping``, and the admin routes (for single-port use)."""
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_get("/ping", self.ping)
        self._add_admin_routes(app)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ping", self.ping)
        self._add_admin_routes(app)
        return app

    def _add_admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/faults", self.get_faults)
        app.router.add_post("/admin/faults", self.post_faults)
        app.router.add_delete("/admin/faults", self.delete_faults)
        app.router.add_get("/admin/stats", self.get_stats)
        app.router.add_delete("/admin/stats", self.delete_stats)
        app.router.add_delete("/admin/state", self.delete_state)
        app.router.add_get("/admin/catalog", self.get_catalog)

    # -------------------------------------------------------------- dispatch

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        arrival = asyncio.get_running_loop().time()
        request_id = new_request_id()
        raw_path = request.raw_path
        path = raw_path.partition("?")[0]
        parts = path.split("/")
        if (
            request.method != "POST"
            or len(parts) != 4
            or parts[1] != "model"
            or parts[3] not in OPERATIONS
        ):
            await request.read()
            return error_response(BedrockError("UnknownOperationException", ""), request_id)
        operation = OPERATIONS[parts[3]]
        model_id = unquote(parts[2])
        body = await request.read()  # read first: keep-alive must survive every error
        self.stats.count(model_id, operation)
        try:
            if self.authenticator is not None:
                headers = request.headers
                self.authenticator.check(
                    request.method, raw_path, headers, lambda n: headers.getall(n, []), body
                )
            target = self.catalog.resolve(model_id)
            if self.faults.faults.affects_requests:
                await self._gate(target)
            if operation == "InvokeModel":
                return await self._invoke(request, target, body, request_id, arrival)
            return await self._converse(
                request, target, body, request_id, arrival, operation == "ConverseStream"
            )
        except BedrockError as exc:
            self.stats.error(exc.name)
            return error_response(exc, request_id)

    async def _gate(self, target: Target) -> None:
        """Apply request-level faults; raises the injected error."""
        state = self.faults
        if not state.applies_to(target.invoked_id, target.model.model_id):
            return
        faults = state.faults
        if faults.added_latency_ms > 0:
            await asyncio.sleep(faults.added_latency_ms / 1000.0)
        if state.not_ready():
            raise BedrockError("ModelNotReadyException", DEFAULT_MESSAGES["ModelNotReadyException"])
        if state.draw_error():
            name = faults.error_type
            extra: dict[str, Any] = {}
            if name == "ModelErrorException":
                extra = {"originalStatusCode": 500, "resourceName": target.invoked_id}
            raise BedrockError(name, faults.error_message or DEFAULT_MESSAGES[name], **extra)

    def _plan(self, req: ConverseRequest) -> tuple[Reply, tuple[wire.Stem, ...]]:
        """The reply and its serialised stream events, memoised: load tests repeat requests.

        The seed covers the model, system, messages, tools and sampling parameters; with
        ``maxTokens`` and ``stopSequences`` it determines the reply completely.
        """
        key = (req.seed, req.max_tokens, req.stop_sequences)
        cached = self._replies.get(key)
        if cached is not None:
            self._replies.move_to_end(key)
            return cached
        reply = plan_reply(req, self.settings.min_output_tokens, self.settings.max_output_tokens)
        cached = self._replies[key] = (reply, wire.stems(reply))
        if len(self._replies) > REPLY_CACHE_SIZE:
            self._replies.popitem(last=False)
        return cached

    def _admit(self, target: Target, estimate: int) -> _Charge | None:
        if target.rpm is None and target.tpm is None:
            return None
        window = self.limiter.window(target.quota_key)
        self.limits[target.quota_key] = (target.rpm, target.tpm)
        result = window.try_admit(time.monotonic(), estimate, target.rpm, target.tpm)
        if isinstance(result, str):
            message = TOO_MANY_REQUESTS if result == REQUESTS else TOO_MANY_TOKENS
            raise BedrockError("ThrottlingException", message)
        return _Charge(window, result)

    # -------------------------------------------------------------- converse

    async def _converse(
        self,
        request: web.Request,
        target: Target,
        body: bytes,
        request_id: str,
        arrival: float,
        stream: bool,
    ) -> web.StreamResponse:
        model = target.model
        req = parse_converse(body, model, model.model_id)
        reply, reply_stems = self._plan(req)
        charge = self._admit(target, req.input_tokens + (req.max_tokens or model.max_output_tokens))
        try:
            read = write = 0
            caching = False
            if model.prompt_caching and req.cache_points:
                cost = self.prompt_cache.charge(
                    req.cache_points, model.cache_min_tokens, time.monotonic()
                )
                read, write = cost.read, cost.write
                caching = bool(read or write)
            usage = wire.TokenUsage(
                req.input_tokens - read - write, reply.output_tokens, read, write, caching
            )
            if stream:
                return await self._stream(
                    request, target, reply_stems, usage, req.echo, request_id, arrival
                )
            loop = asyncio.get_running_loop()
            if not self.timing.zero:
                await sleep_until(arrival + self.timing.total_s(model, reply.output_tokens))
            latency_ms = int((loop.time() - arrival) * 1000)
            return web.Response(
                body=wire.converse_body(reply, usage, latency_ms, req.echo),
                headers={"x-amzn-RequestId": request_id, "Content-Type": JSON_CONTENT_TYPE},
            )
        finally:
            if charge is not None:
                charge.settle(req.input_tokens + reply.output_tokens)

    async def _stream(
        self,
        request: web.Request,
        target: Target,
        events: tuple[wire.Stem, ...],
        usage: wire.TokenUsage,
        echo: dict[str, Any],
        request_id: str,
        arrival: float,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        faults = self.faults.faults
        cut = faults.stream_exception_after_events
        if cut is not None and not self.faults.applies_to(target.invoked_id, target.model.model_id):
            cut = None
        headers = {"x-amzn-RequestId": request_id, "Content-Type": EVENTSTREAM_CONTENT_TYPE}
        rng = self._rng
        if self.timing.zero and cut is None:
            # Nothing to pace: the whole stream in one chunked body, written with the headers.
            frames = [wire.padded(e, rng) for e in events]
            latency_ms = int((loop.time() - arrival) * 1000)
            frames.append(
                wire.frame("metadata", wire.metadata_payload(usage, latency_ms, echo), rng)
            )
            whole = web.Response(body=b"".join(frames), headers=headers)
            whole.enable_chunked_encoding()
            return whole

        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        model = target.model
        ttft = arrival + self.timing.ttft_s(model)
        interval = self.timing.token_interval_s(model)
        pending: list[bytes] = []
        sent = 0
        token_index = 0
        try:
            for event in [*events, None]:
                if cut is not None and sent == cut:
                    await response.write(b"".join(pending))
                    await response.write(self._stream_exception(faults))
                    await response.write_eof()
                    return response
                if event is None:
                    latency_ms = int((loop.time() - arrival) * 1000)
                    payload = wire.metadata_payload(usage, latency_ms, echo)
                    pending.append(wire.frame("metadata", payload, rng))
                    await response.write(b"".join(pending))
                    await response.write_eof()
                    return response
                if event.token or sent == 0:
                    if pending:
                        await response.write(b"".join(pending))
                        pending = []
                    if not self.timing.zero:
                        await sleep_until(ttft + token_index * interval)
                    if event.token:
                        token_index += 1
                pending.append(wire.padded(event, rng))
                sent += 1
        except ConnectionError:
            pass  # the client went away
        return response

    def _stream_exception(self, faults: Faults) -> bytes:
        kind = faults.stream_exception_type
        name = STREAM_EXCEPTIONS[kind]
        message = faults.stream_exception_message or DEFAULT_MESSAGES[name]
        payload: dict[str, Any] = {"message": message}
        if kind == "modelStreamErrorException":
            payload.update(originalStatusCode=500, originalMessage=message)
        self.stats.error(kind)
        return exception_frame(kind, orjson.dumps(payload))

    # ---------------------------------------------------------------- invoke

    async def _invoke(
        self, request: web.Request, target: Target, body: bytes, request_id: str, arrival: float
    ) -> web.Response:
        model = target.model
        if model.kind != EMBEDDING:
            raise validation(INVOKE_CHAT_UNSUPPORTED)
        content_type = request.headers.get("Content-Type", JSON_CONTENT_TYPE).split(";")[0]
        if content_type.strip().lower() != JSON_CONTENT_TYPE:
            raise validation(f"The provided content type '{content_type}' is not supported.")
        accept = request.headers.get("Accept", "*/*").split(";")[0].strip().lower()
        if accept not in ("*/*", JSON_CONTENT_TYPE, ""):
            raise validation(f"The provided Accept type '{accept}' is not supported.")
        req = parse_titan_embedding(body, model)
        tokens = count_tokens(req.text)
        charge = self._admit(target, tokens)
        try:
            if not self.timing.zero:
                await sleep_until(arrival + self.timing.ttft_s(model))
            vector = embedding(req.text, req.dimensions, req.normalize)
            binary = binary_embedding(vector) if "binary" in req.types else None
            payload = wire.embedding_body(vector, binary, "float" in req.types, tokens)
            latency_ms = int((asyncio.get_running_loop().time() - arrival) * 1000)
            return web.Response(
                body=payload,
                headers={
                    "x-amzn-RequestId": request_id,
                    "Content-Type": JSON_CONTENT_TYPE,
                    "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
                    "X-Amzn-Bedrock-Invocation-Latency": str(latency_ms),
                },
            )
        finally:
            if charge is not None:
                charge.settle(tokens)

    # ----------------------------------------------------------------- admin

    async def ping(self, request: web.Request) -> web.Response:
        return _json({"status": "Healthy"})

    def _faults_json(self) -> dict[str, Any]:
        data = self.faults.faults.to_json()
        data["model_not_ready_remaining_s"] = round(self.faults.not_ready_remaining_s(), 3)
        return data

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self._faults_json())

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            update = orjson.loads(await request.read())
            new = apply_update(self.faults.faults, update)
        except (orjson.JSONDecodeError, FaultError) as exc:
            return _json({"message": f"invalid fault update: {exc}"}, status=400)
        self.faults.set(new)
        return _json(self._faults_json())

    async def delete_faults(self, request: web.Request) -> web.Response:
        self.faults.set(Faults())
        return _json(self._faults_json())

    async def get_stats(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        quotas = {
            key: {
                "requests": usage.requests,
                "tokens": usage.tokens,
                "rpm": self.limits.get(key, (None, None))[0],
                "tpm": self.limits.get(key, (None, None))[1],
            }
            for key, usage in self.limiter.snapshot(now).items()
        }
        return _json(
            {
                **self.stats.to_json(),
                "quotas": quotas,
                "prompt_cache_entries": len(self.prompt_cache),
                "faults": self._faults_json(),
            }
        )

    async def delete_stats(self, request: web.Request) -> web.Response:
        self.stats.reset()
        return _json(self.stats.to_json())

    async def delete_state(self, request: web.Request) -> web.Response:
        """Forget counters, quota windows and cached prompts (faults stay)."""
        self.stats.reset()
        self.limiter.reset()
        self.prompt_cache.clear()
        return _json(self.stats.to_json())

    async def get_catalog(self, request: web.Request) -> web.Response:
        data = self.catalog.to_json()
        data["inference_profiles"] = self.catalog.profile_ids()
        return _json(data)
