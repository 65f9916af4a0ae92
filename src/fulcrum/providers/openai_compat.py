"""Provider for OpenAI-compatible upstreams: vLLM, and any server speaking the OpenAI API.

The wire format already matches, so this is mostly transport: one pooled keep-alive session
per deployment, the body forwarded with the model id rewritten (and usage requested for
streams), response bytes passed through, usage read on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import orjson

from fulcrum.api.errors import UpstreamError
from fulcrum.config import OpenAIDeployment
from fulcrum.providers.base import Completion, Usage
from fulcrum.providers.estimate import estimate_prompt_tokens
from fulcrum.providers.failures import (
    broken_stream,
    closed_before_first_event,
    invalid_response,
    timed_out,
    unreachable,
)
from fulcrum.providers.sse import SseSplitter, has_usage, is_done, take_usage, usage_from_object
from fulcrum.schema.openai import Endpoint, InferenceRequest

log = logging.getLogger("fulcrum.providers.openai")

_RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
_PASSED_THROUGH_5XX = frozenset({503, 504})


class OpenAICompatProvider:
    """Client of one OpenAI-compatible deployment."""

    def __init__(self, name: str, deployment: OpenAIDeployment) -> None:
        self.name = name
        self.deployment = deployment
        self._base = deployment.base
        self._health_url = deployment.root + deployment.health_check.path
        self._ttft = deployment.timeouts.ttft
        # identity: the gateway passes bytes through, so it must never receive them compressed
        self._headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if deployment.api_key:
            self._headers["Authorization"] = f"Bearer {deployment.api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._draining: set[asyncio.Task[None]] = set()

    def session(self) -> aiohttp.ClientSession:
        """The deployment's pooled session (also used by its active probes)."""
        return self._client()

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session must be born inside the running event loop.
        if self._session is None:
            timeouts = self.deployment.timeouts
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.deployment.max_connections,
                    ttl_dns_cache=300,
                    keepalive_timeout=self.deployment.keepalive_timeout,
                ),
                timeout=aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _payload(self, request: InferenceRequest) -> bytes:
        body = dict(request.body)
        body["model"] = self.deployment.model
        if request.endpoint is Endpoint.EMBEDDINGS:
            body.pop("stream", None)  # embeddings never stream; don't confuse the upstream
            body.pop("stream_options", None)
        elif request.stream and not request.client_wants_usage:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        return orjson.dumps(body)

    async def _post(self, request: InferenceRequest, request_id: str) -> aiohttp.ClientResponse:
        headers = {**self._headers, "X-Request-Id": request_id}
        url = f"{self._base}/{request.endpoint.value}"
        payload = self._payload(request)
        try:
            try:
                response = await self._client().post(url, data=payload, headers=headers)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # A pooled keep-alive connection the upstream closed as we reused it: the
                # request never reached it, so one immediate retry on a fresh one is safe.
                response = await self._client().post(url, data=payload, headers=headers)
        except TimeoutError:
            raise  # a timeout is an OSError too, but it means 504, not "unreachable"
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise unreachable(self.name, exc) from None
        if response.status >= 400:
            try:
                body = await response.read()
            except (aiohttp.ClientError, OSError):
                body = b""
            finally:
                response.release()
            raise error_from_upstream(self.name, response.status, body, response.headers)
        return response

    async def complete(self, request: InferenceRequest, request_id: str) -> Completion:
        # No time-to-first-token bound here: a non-streaming answer's headers arrive only
        # when generation is complete, so only the total timeout is meaningful.
        try:
            response = await self._post(request, request_id)
            try:
                body = await response.read()
            finally:
                response.release()
        except TimeoutError:
            raise timed_out(self.name) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise unreachable(self.name, exc) from None
        parsed = _json_object(body)
        if parsed is None:
            raise invalid_response(self.name, "the answer is not a JSON object")
        return Completion(body=body, usage=usage_from_object(parsed.get("usage")))

    async def open_stream(self, request: InferenceRequest, request_id: str) -> OpenAIStream:
        splitter = SseSplitter()
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self._ttft):
                response = await self._post(request, request_id)
                content_type = response.headers.get("Content-Type", "")
                if not content_type.startswith("text/event-stream"):
                    raise invalid_response(self.name, f"a stream answered as {content_type!r}")
                first: list[bytes] = []
                while not first:
                    data = await response.content.readany()
                    if not data:
                        raise closed_before_first_event(self.name)
                    first = splitter.feed(data)
        except TimeoutError:
            if response is not None:
                response.close()
            raise timed_out(self.name) from None
        except (aiohttp.ClientError, OSError) as exc:
            if response is not None:
                response.close()
            raise unreachable(self.name, exc) from None
        except BaseException:
            if response is not None:
                response.close()
            raise
        return OpenAIStream(self, response, splitter, first, request)

    def _drain_later(self, response: aiohttp.ClientResponse) -> None:
        """Read the rest of a finished stream off the hot path, so the connection is reused."""

        async def drain() -> None:
            try:
                async with asyncio.timeout(5):
                    while await response.content.readany():
                        pass
            except (TimeoutError, aiohttp.ClientError, OSError):
                response.close()
            finally:
                response.release()

        task = asyncio.get_running_loop().create_task(drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def check_health(self) -> bool:
        if not self.deployment.health_check.enabled:
            return True
        try:
            async with asyncio.timeout(self.deployment.health_check.timeout):
                async with self._client().get(self._health_url) as response:
                    await response.read()
                    return response.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def close(self) -> None:
        for task in list(self._draining):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAIStream:
    """An open upstream SSE stream; yields byte batches ready to write to the client."""

    def __init__(
        self,
        provider: OpenAICompatProvider,
        response: aiohttp.ClientResponse,
        splitter: SseSplitter,
        first_events: list[bytes],
        request: InferenceRequest,
    ) -> None:
        self.usage: Usage | None = None
        self.completed = False
        self._provider = provider
        self._response = response
        self._splitter = splitter
        self._pending: list[bytes] | None = first_events
        self._request = request
        self._forward_usage = request.client_wants_usage
        self._events = 0  # data events forwarded: ~one token each, for estimates
        self._closed = False

    def __aiter__(self) -> OpenAIStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self.completed:
                raise StopAsyncIteration
            events = self._pending
            self._pending = None
            if events is None:
                events = await self._read()
            out = self._filter(events)
            if out:
                return out

    async def _read(self) -> list[bytes]:
        try:
            data = await self._response.content.readany()
        except TimeoutError:
            raise timed_out(self._provider.name) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise broken_stream(self._provider.name, str(exc) or type(exc).__name__) from None
        if not data:
            raise broken_stream(self._provider.name, "the upstream ended the stream early")
        return self._splitter.feed(data)

    def _filter(self, events: list[bytes]) -> bytes:
        out: list[bytes] = []
        for event in events:
            if has_usage(event):
                usage, forwarded = take_usage(event, self._forward_usage)
                if usage is not None:
                    self.usage = usage
                if forwarded is not None:
                    out.append(forwarded)
            elif is_done(event):
                self.completed = True
                out.append(event)
                break
            else:
                self._events += 1
                out.append(event)
        return b"".join(out)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.completed:
            self._provider._drain_later(self._response)
        else:
            self._response.close()  # abort: the upstream sees the disconnect and stops work
        if self.usage is None:  # aborted or broken before the usage chunk: estimate it
            self.usage = Usage(
                input_tokens=estimate_prompt_tokens(self._request.body),
                output_tokens=max(0, self._events - 1),  # the first event carries the role
            )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def error_from_upstream(name: str, status: int, body: bytes, headers: Any) -> UpstreamError:
    """Map an upstream error response to the error the client sees.

    4xx keep their status and the upstream's message; 503/504 keep theirs too (clients know
    to retry them); other 5xx become 502. 408/409/425/429 and all 5xx are retryable elsewhere.
    """
    message, err_type, code, param = _parse_error_body(body)
    retry_after = _retry_after(headers.get("Retry-After") if headers is not None else None)
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    if status >= 500 and status not in _PASSED_THROUGH_5XX:
        client_status, err_type = 502, "upstream_error"
    else:
        client_status = status
    return UpstreamError(
        client_status,
        message or f"Upstream `{name}` answered HTTP {status}.",
        retryable=retryable,
        reason=f"http_{status}",
        type=err_type or ("upstream_error" if status >= 500 else "invalid_request_error"),
        code=code,
        param=param,
        retry_after=retry_after,
    )


def _parse_error_body(body: bytes) -> tuple[str | None, str | None, Any, str | None]:
    """Read the message out of OpenAI's, current vLLM's, or older vLLM's error shapes."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or None), None, None, None
    if not isinstance(parsed, dict):
        return None, None, None, None
    error = parsed.get("error")
    source = error if isinstance(error, dict) else parsed
    message = source.get("message")
    if message is None and isinstance(error, str):
        message = error
    err_type = source.get("type")
    code = source.get("code")
    param = source.get("param")
    return (
        str(message) if message is not None else None,
        str(err_type) if isinstance(err_type, str) else None,
        code if isinstance(code, str | int) and not isinstance(code, bool) else None,
        str(param) if isinstance(param, str) else None,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    return None
