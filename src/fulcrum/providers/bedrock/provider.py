"""The Bedrock provider: translation (pure) + transport (signing, HTTP, event stream).

Chat goes through Converse / ConverseStream, embeddings through InvokeModel with Titan Text
Embeddings V2. A stream is returned only after its first event arrived, so throttling or a
model that is not ready can still fail over to another deployment.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aiohttp
import botocore.eventstream
import botocore.exceptions
import orjson

from fulcrum.api.errors import ApiError, UpstreamError
from fulcrum.config import BedrockDeployment
from fulcrum.providers.base import Completion, Usage
from fulcrum.providers.bedrock.embeddings import openai_embeddings, titan_requests
from fulcrum.providers.bedrock.errors import bedrock_error, error_from_response, exception_name
from fulcrum.providers.bedrock.responses import StreamTranslator, converse_to_chat
from fulcrum.providers.bedrock.translate import chat_to_converse
from fulcrum.providers.bedrock.transport import (
    EventStreamDecoder,
    RequestSigner,
    SessionPool,
    StreamEvent,
    model_path,
    signed_url,
)
from fulcrum.providers.estimate import estimate_prompt_tokens
from fulcrum.providers.failures import (
    broken_stream,
    closed_before_first_event,
    invalid_response,
    timed_out,
    unreachable,
)
from fulcrum.providers.sse import DONE_EVENT
from fulcrum.schema.openai import Endpoint, InferenceRequest

_JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_STREAM_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/vnd.amazon.eventstream",
}
_EMBEDDING_CONCURRENCY = 8


def _completion_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


class BedrockProvider:
    """Client of one Bedrock deployment (a model id, inference profile or PT ARN)."""

    def __init__(self, name: str, deployment: BedrockDeployment, pool: SessionPool) -> None:
        self.name = name
        self.deployment = deployment
        self._pool = pool
        self._endpoint = deployment.endpoint
        self._signer = RequestSigner(deployment.auth, deployment.region)
        timeouts = deployment.timeouts
        self._timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
        self._ttft = timeouts.ttft

    async def _post(
        self, operation: str, body: bytes, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        url, target = signed_url(self._endpoint, model_path(self.deployment.model, operation))
        signed = await self._signer.headers(url, body, headers)
        session = self._pool.session(self._endpoint)
        try:
            response = await session.post(target, data=body, headers=signed, timeout=self._timeout)
        except TimeoutError:
            raise timed_out(self.name) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise unreachable(self.name, exc) from None
        if response.status >= 400:
            try:
                error_body = await response.read()
            except (aiohttp.ClientError, OSError):
                error_body = b""
            finally:
                response.release()
            raise error_from_response(self.name, response.status, response.headers, error_body)
        return response

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.read()
        except TimeoutError:
            raise timed_out(self.name) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise unreachable(self.name, exc) from None
        finally:
            response.release()

    async def complete(self, request: InferenceRequest, request_id: str) -> Completion:
        if request.endpoint is Endpoint.EMBEDDINGS:
            return await self._embed(request)
        if request.endpoint is not Endpoint.CHAT:
            raise _unsupported_endpoint(self.name, request.endpoint)
        converse = chat_to_converse(request.body, self.deployment.additional_request_fields)
        response = await self._post("converse", orjson.dumps(converse), _JSON_HEADERS)
        raw = await self._read(response)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise invalid_response(self.name, "the body is not JSON") from None
        completion, usage = converse_to_chat(
            parsed, completion_id=_completion_id(), created=int(time.time()), model=request.model
        )
        return Completion(body=orjson.dumps(completion), usage=usage)

    async def _embed(self, request: InferenceRequest) -> Completion:
        if not self.deployment.embeddings:
            raise _unsupported_endpoint(self.name, request.endpoint)
        bodies = titan_requests(request.body)
        limit = asyncio.Semaphore(_EMBEDDING_CONCURRENCY)

        async def invoke(body: dict[str, Any]) -> dict[str, Any]:
            async with limit:
                response = await self._post("invoke", orjson.dumps(body), _JSON_HEADERS)
                raw = await self._read(response)
            try:
                result = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise invalid_response(self.name, "the body is not JSON") from None
            if not isinstance(result, dict):
                raise invalid_response(self.name, "the body is not a JSON object")
            return result

        results = await asyncio.gather(*(invoke(body) for body in bodies))
        response, tokens = openai_embeddings(
            list(results), model=request.model, encoding_format=request.body.get("encoding_format")
        )
        return Completion(body=orjson.dumps(response), usage=Usage(input_tokens=tokens))

    async def open_stream(self, request: InferenceRequest, request_id: str) -> BedrockStream:
        if request.endpoint is not Endpoint.CHAT:
            raise _unsupported_endpoint(self.name, request.endpoint)
        converse = chat_to_converse(request.body, self.deployment.additional_request_fields)
        translator = StreamTranslator(
            completion_id=_completion_id(), created=int(time.time()), model=request.model
        )
        stream: BedrockStream | None = None
        try:
            async with asyncio.timeout(self._ttft):
                response = await self._post(
                    "converse-stream", orjson.dumps(converse), _STREAM_HEADERS
                )
                stream = BedrockStream(self.name, response, translator, request)
                await stream.prime()
        except TimeoutError:
            if stream is not None:
                await stream.aclose()
            raise timed_out(self.name) from None
        except BaseException:
            if stream is not None:
                await stream.aclose()
            raise
        return stream

    async def check_health(self) -> bool:
        return True  # Bedrock has no health endpoint: passive health from traffic only

    async def close(self) -> None:
        """Sessions belong to the shared pool, which the composition root closes."""


class BedrockStream:
    """ConverseStream events → OpenAI SSE bytes, batch by batch as they arrive."""

    def __init__(
        self,
        name: str,
        response: aiohttp.ClientResponse,
        translator: StreamTranslator,
        request: InferenceRequest,
    ) -> None:
        self.usage: Usage | None = None
        self.completed = False
        self._name = name
        self._response = response
        self._translator = translator
        self._request = request
        self._forward_usage = request.client_wants_usage
        self._deltas = 0  # content deltas forwarded: ~one token each, for estimates
        self._decoder = EventStreamDecoder()
        self._pending: list[StreamEvent] = []
        self._failure: UpstreamError | None = None  # raised once what preceded it was sent
        self._stopped = False
        self._closed = False

    async def prime(self) -> None:
        """Wait for the first event; an exception before it can still fail over."""
        while not self._pending:
            events = await self._read()
            if events is None:
                raise closed_before_first_event(self._name)
            # An exception before any content (even in the same read as messageStart) reached
            # nobody yet: it may still fail over.
            for event in events:
                if event.kind != "event":
                    raise self._exception(event, retryable_ok=True)
                if event.name == "contentBlockDelta":
                    break
            self._pending = events

    async def _read(self) -> list[StreamEvent] | None:
        try:
            data = await self._response.content.readany()
        except TimeoutError:
            raise timed_out(self._name) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise broken_stream(self._name, str(exc) or type(exc).__name__) from None
        if not data:
            return None
        try:
            return list(self._decoder.feed(data))
        except (botocore.eventstream.ParserError, botocore.exceptions.BotoCoreError) as exc:
            # CRC mismatch, bad prelude, oversized message
            raise broken_stream(self._name, f"corrupt event stream: {exc}") from None

    def _exception(self, event: StreamEvent, retryable_ok: bool = False) -> UpstreamError:
        error = bedrock_error(
            self._name, exception_name(event.name), str(event.payload.get("message") or "")
        )
        if not retryable_ok:
            error.retryable = False  # bytes already reached the client: too late to fail over
        return error

    def __aiter__(self) -> BedrockStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self.completed:
                raise StopAsyncIteration
            events = self._pending
            self._pending = []
            if not events:
                read = await self._read()
                if read is None:
                    return self._end_of_stream()
                events = read
            out = self._translate(events)
            if out:
                return out

    def _translate(self, events: list[StreamEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if event.kind != "event":
                # Deliver what came before the exception first; raise it on the next call.
                self._failure = self._exception(event)
                break
            for chunk in self._translator.translate(event.name, event.payload):
                if "usage" in chunk:
                    self.usage = self._translator.usage
                    if not self._forward_usage:
                        continue
                out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if event.name == "contentBlockDelta":
                self._deltas += 1
            elif event.name == "messageStop":
                self._stopped = True
            elif event.name == "metadata":
                self.completed = True
                out.append(DONE_EVENT)
                break
        return b"".join(out)

    def _end_of_stream(self) -> bytes:
        if not self._stopped:
            raise broken_stream(self._name, "the stream ended before messageStop")
        self.completed = True  # metadata is optional: end cleanly without usage
        return DONE_EVENT

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.completed:
            self._response.release()
        else:
            self._response.close()
        if self.usage is None:  # aborted or broken before metadata: estimate it
            self.usage = Usage(
                input_tokens=estimate_prompt_tokens(self._request.body),
                output_tokens=self._deltas,
            )


def _unsupported_endpoint(name: str, endpoint: Endpoint) -> ApiError:
    return ApiError(
        400,
        f"Deployment `{name}` (Bedrock) does not serve /v1/{endpoint.value}.",
        code="unsupported_endpoint",
    )
