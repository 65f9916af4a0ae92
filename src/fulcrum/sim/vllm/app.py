"""HTTP surface of the emulator: vLLM's routes on the main app, fault control on the admin app.

Handlers stay thin: parse (``protocol``), decide the whole result (``planner``), then let the
scheduler and timing model (``engine``) release it token by token. A client that goes away
cancels its handler (the runner is built with ``handler_cancellation=True``) or makes a write
fail; either way the ``Run`` context frees the request's slots and the metrics record an abort.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import orjson
from aiohttp import web

from fulcrum.sim.fault_fields import FaultError
from fulcrum.sim.vllm import planner, streams, wire
from fulcrum.sim.vllm import tokenizer as tok
from fulcrum.sim.vllm.engine import Run, Scheduler, Ticket, Timing
from fulcrum.sim.vllm.errors import JSON_CONTENT_TYPE, ApiError, error_body, error_response
from fulcrum.sim.vllm.faults import Faults, FaultState, apply_update
from fulcrum.sim.vllm.generation import VOCAB_INDEX
from fulcrum.sim.vllm.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from fulcrum.sim.vllm.metrics import VllmMetrics
from fulcrum.sim.vllm.protocol import (
    parse_chat,
    parse_completion,
    parse_detokenize,
    parse_embedding,
    parse_json_object,
    parse_tokenize,
)
from fulcrum.sim.vllm.settings import Settings

CLIENT_MAX_SIZE = 64 * 1024 * 1024
NOT_READY_MESSAGE = "The server is starting up and not ready to serve requests."


class ListenerControl(Protocol):
    """Lets the admin API stop and restart the main listening socket."""

    @property
    def can_refuse(self) -> bool: ...

    async def set_refusing(self, refusing: bool, keep: asyncio.BaseTransport | None) -> None: ...


class StreamCut(Exception):
    """The ``cut_stream_after_chunks`` fault fired: drop the connection now."""


class SseWriter:
    """Writes SSE events, honouring the cut-stream fault's event budget."""

    __slots__ = ("_budget", "_response", "sent")

    def __init__(self, response: web.StreamResponse, budget: int | None) -> None:
        self._response = response
        self._budget = budget
        self.sent = 0

    async def send(self, events: Sequence[bytes]) -> None:
        if not events:
            return
        if self._budget is not None and self.sent + len(events) > self._budget:
            room = max(0, self._budget - self.sent)
            if room:
                await self._response.write(b"".join(events[:room]))
                self.sent += room
            raise StreamCut
        await self._response.write(b"".join(events) if len(events) > 1 else events[0])
        self.sent += len(events)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)


class VllmSim:
    """State and handlers of one emulated vLLM server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scheduler = Scheduler(settings.max_num_seqs, settings.kv_cache_tokens)
        self.timing = Timing(
            prefill_ms_per_token=settings.prefill_ms_per_token,
            itl_ms=settings.itl_ms,
            itl_ms_per_seq=settings.itl_ms_per_seq,
            speed=settings.speed,
            zero=settings.no_latency,
        )
        self.metrics = VllmMetrics(settings.served_name, settings.max_model_len)
        self.faults = FaultState()
        self.listener: ListenerControl | None = None
        self._started = wire.now()

    # ----------------------------------------------------------------- apps

    def main_app(self) -> web.Application:
        """vLLM's routes (plus the admin routes, for single-port use)."""
        app = web.Application(client_max_size=CLIENT_MAX_SIZE)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ping", self.health)
        app.router.add_post("/ping", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        app.router.add_get("/metrics", self.metrics_endpoint)
        self._add_admin_routes(app)
        return app

    def admin_app(self) -> web.Application:
        """Only the admin routes: stays reachable while the main port refuses connections."""
        app = web.Application()
        self._add_admin_routes(app)
        return app

    def _add_admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/faults", self.get_faults)
        app.router.add_post("/admin/faults", self.post_faults)
        app.router.add_delete("/admin/faults", self.delete_faults)
        app.router.add_get("/admin/stats", self.stats)

    # --------------------------------------------------------------- faults

    async def _gate(self) -> web.Response | None:
        """Apply request-level faults; a response means "answer with this instead"."""
        faults = self.faults.faults
        if faults.added_latency_ms > 0:
            await asyncio.sleep(faults.added_latency_ms / 1000.0)
        if faults.not_ready:
            return web.Response(
                status=503,
                body=error_body(NOT_READY_MESSAGE, 503),
                content_type=JSON_CONTENT_TYPE,
            )
        if self.faults.draw_error():
            status = faults.error_status
            return web.Response(
                status=status,
                body=error_body(faults.error_message, status),
                content_type=JSON_CONTENT_TYPE,
            )
        return None

    def _check_model(self, model: str | None) -> None:
        if model and model not in self.settings.served_model_names:
            raise ApiError(f"The model `{model}` does not exist.", status=404, param="model")

    # ----------------------------------------------------------- generation

    async def _generate(
        self,
        arrival: float,
        prompt_tokens: int,
        token_counts: list[int],
        reasons: list[str],
        on_step: Callable[[int], Awaitable[None]] | None,
    ) -> None:
        """Queue, prefill and decode one request; ``on_step(k)`` runs as token k is ready."""
        width = len(token_counts)
        ticket = Ticket(width=width, prompt_tokens=prompt_tokens, arrival=arrival)
        steps = streams.steps_of(token_counts)
        done = 0
        finished = False
        try:
            async with Run(self.scheduler, self.timing, ticket) as run:
                await run.prefill()
                self.metrics.first_token(time.monotonic() - arrival)
                if on_step is None and self.timing.zero:
                    self.scheduler.add_generated(ticket, sum(token_counts))
                    done = steps
                else:
                    for step in range(steps):
                        if step:
                            await run.next_token()
                        active = width if width == 1 else sum(1 for c in token_counts if c > step)
                        self.scheduler.add_generated(ticket, active)
                        done = step + 1
                        if on_step is not None:
                            await on_step(step)
                finished = True
        finally:
            self.metrics.finished(
                e2e_seconds=time.monotonic() - arrival,
                queue_seconds=ticket.queue_seconds,
                prompt_tokens=prompt_tokens if ticket.admitted_at is not None else 0,
                generated_tokens=[min(c, done) for c in token_counts],
                reasons=reasons if finished else ["abort"] * width,
            )

    async def _stream(
        self,
        request: web.Request,
        arrival: float,
        prompt_tokens: int,
        token_counts: list[int],
        reasons: list[str],
        step_events: Callable[[int], list[bytes]],
        tail_events: Callable[[], list[bytes]],
    ) -> web.StreamResponse:
        """Send a generation as SSE, with vLLM's headers, honouring cut-stream and disconnects."""
        cut = self.faults.faults.cut_stream_after_chunks
        if self.timing.zero and cut is None:
            # Nothing to pace: one chunked body, written with the headers in one go.
            await self._generate(arrival, prompt_tokens, token_counts, reasons, None)
            events = [
                e for step in range(streams.steps_of(token_counts)) for e in step_events(step)
            ]
            events.extend(tail_events())
            whole = web.Response(
                body=b"".join(events), headers={"Content-Type": wire.SSE_CONTENT_TYPE}
            )
            whole.enable_chunked_encoding()
            return whole

        response = web.StreamResponse(headers={"Content-Type": wire.SSE_CONTENT_TYPE})
        await response.prepare(request)
        writer = SseWriter(response, cut)

        async def on_step(step: int) -> None:
            await writer.send(step_events(step))

        try:
            await self._generate(arrival, prompt_tokens, token_counts, reasons, on_step)
            await writer.send(tail_events())
        except StreamCut:
            transport = request.transport
            if transport is not None:
                transport.close()  # flushes what was written, then FIN: no [DONE], no EOF chunk
        except ConnectionError:
            pass  # the client went away; _generate already recorded the abort
        return response

    # ------------------------------------------------------------- handlers

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        arrival = time.monotonic()
        raw = await request.read()  # read first: keep-alive must survive injected errors
        if self.faults.faults.affects_requests and (early := await self._gate()) is not None:
            return early
        try:
            data = parse_json_object(raw)
            chat = parse_chat(data, self.settings.auto_tool_choice)
            self._check_model(chat.model)
            plan = planner.plan_chat(chat, self.settings)
        except ApiError as exc:
            return error_response(exc)
        counts = [c.output.num_tokens for c in plan.choices]
        reasons = [c.output.finish_reason for c in plan.choices]
        request_id = f"chatcmpl-{wire.random_id()}"
        created = wire.now()
        model = self.settings.served_name
        if chat.sampling.stream:
            meta = streams.StreamMeta(
                request_id, created, model, plan.prompt_tokens, chat.sampling.continuous_usage
            )
            chat_stream = streams.ChatStream(meta, plan.choices)
            include_usage = chat.sampling.include_usage
            return await self._stream(
                request,
                arrival,
                plan.prompt_tokens,
                counts,
                reasons,
                chat_stream.step,
                lambda: chat_stream.tail(include_usage),
            )
        await self._generate(arrival, plan.prompt_tokens, counts, reasons, None)
        body = wire.chat_completion(request_id, created, model, plan.choices, plan.prompt_tokens)
        return _json(body)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        arrival = time.monotonic()
        raw = await request.read()  # read first: keep-alive must survive injected errors
        if self.faults.faults.affects_requests and (early := await self._gate()) is not None:
            return early
        try:
            data = parse_json_object(raw)
            req = parse_completion(data)
            self._check_model(req.model)
            plan = planner.plan_completion(req, self.settings)
        except ApiError as exc:
            return error_response(exc)
        counts = [c.output.num_tokens for c in plan.choices]
        reasons = [c.output.finish_reason for c in plan.choices]
        request_id = f"cmpl-{wire.random_id()}"
        created = wire.now()
        model = self.settings.served_name
        if req.sampling.stream:
            meta = streams.StreamMeta(
                request_id, created, model, plan.prompt_tokens, req.sampling.continuous_usage
            )
            text_stream = streams.CompletionStream(meta, plan.choices)
            include_usage = req.sampling.include_usage
            return await self._stream(
                request,
                arrival,
                plan.prompt_tokens,
                counts,
                reasons,
                text_stream.step,
                lambda: text_stream.tail(include_usage),
            )
        await self._generate(arrival, plan.prompt_tokens, counts, reasons, None)
        body = wire.completion(request_id, created, model, plan.choices, plan.prompt_tokens)
        return _json(body)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        arrival = time.monotonic()
        raw = await request.read()  # read first: keep-alive must survive injected errors
        if self.faults.faults.affects_requests and (early := await self._gate()) is not None:
            return early
        try:
            data = parse_json_object(raw)
            req = parse_embedding(data)
            self._check_model(req.model)
            plan = planner.plan_embedding(req, self.settings)
        except ApiError as exc:
            return error_response(exc)
        await self._generate(arrival, plan.prompt_tokens, [0], ["stop"], None)
        body = wire.embeddings(
            f"embd-{wire.random_id()}",
            wire.now(),
            self.settings.served_name,
            plan.vectors,
            plan.prompt_tokens,
        )
        return _json(body)

    async def models(self, request: web.Request) -> web.Response:
        s = self.settings
        return _json(wire.models(s.served_model_names, s.model, s.max_model_len, self._started))

    async def health(self, request: web.Request) -> web.Response:
        if self.faults.faults.not_ready:
            return web.Response(status=503)
        return web.Response(status=200)

    async def version(self, request: web.Request) -> web.Response:
        return _json({"version": self.settings.vllm_version})

    async def tokenize(self, request: web.Request) -> web.Response:
        try:
            req = parse_tokenize(parse_json_object(await request.read()))
            self._check_model(req.model)
        except ApiError as exc:
            return error_response(exc)
        if req.messages is not None:
            strs = tok.chat_prompt_token_strs(req.messages, req.tools, req.add_generation_prompt)
        else:
            strs = (["<s>"] if req.add_special_tokens else []) + tok.tokens(req.prompt or "")
        ids = tok.ids_for(strs, VOCAB_INDEX)
        return _json(
            {
                "count": len(ids),
                "max_model_len": self.settings.max_model_len,
                "tokens": ids,
                "token_strs": strs if req.return_token_strs else None,
            }
        )

    async def detokenize(self, request: web.Request) -> web.Response:
        try:
            model, ids = parse_detokenize(parse_json_object(await request.read()))
            self._check_model(model)
        except ApiError as exc:
            return error_response(exc)
        return _json({"prompt": planner.detokenize(ids)})

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        body = self.metrics.render(self.scheduler.snapshot())
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    # ---------------------------------------------------------------- admin

    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.faults.to_json())

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            update = orjson.loads(await request.read())
            new = apply_update(self.faults.faults, update)
        except (orjson.JSONDecodeError, FaultError) as exc:
            return web.Response(
                status=400,
                body=error_body(f"invalid fault update: {exc}", 400),
                content_type=JSON_CONTENT_TYPE,
            )
        return await self._install(request, new)

    async def delete_faults(self, request: web.Request) -> web.Response:
        return await self._install(request, Faults())

    async def _install(self, request: web.Request, new: Faults) -> web.Response:
        old = self.faults.faults
        if new.refuse_connections != old.refuse_connections:
            if self.listener is None or not self.listener.can_refuse:
                return web.Response(
                    status=400,
                    body=error_body(
                        "refuse_connections needs --admin-port, or the fault could never be undone",
                        400,
                        param="refuse_connections",
                    ),
                    content_type=JSON_CONTENT_TYPE,
                )
            await self.listener.set_refusing(new.refuse_connections, request.transport)
        self.faults.set(new)
        response = _json(new.to_json())
        if new.refuse_connections:
            response.force_close()  # this connection may belong to the port just closed
        return response

    async def stats(self, request: web.Request) -> web.Response:
        snap = self.scheduler.snapshot()
        return _json(
            {
                "running": snap.running,
                "waiting": snap.waiting,
                "kv_cache_tokens": snap.kv_tokens,
                "kv_cache_capacity": snap.kv_capacity,
                "kv_cache_usage": snap.kv_usage,
                "faults": self.faults.faults.to_json(),
            }
        )
