"""Bedrock Runtime transport: credentials, SigV4 signing, HTTP, AWS event-stream framing.

Signing and credential resolution are botocore's (the same code the AWS SDK runs); this module
only makes them safe on an event loop (resolution and refresh run in a thread) and sends the
exact signed bytes. One pooled aiohttp session per endpoint (per region) is shared by every
deployment that calls it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.eventstream import EventStreamBuffer, EventStreamMessage
from botocore.exceptions import BotoCoreError
from botocore.session import Session
from yarl import URL

from fulcrum.api.errors import UpstreamError
from fulcrum.config import BedrockAuth

SIGNING_SERVICE = "bedrock"


def model_path(model_id: str, operation: str) -> str:
    """``/model/{modelId}/{operation}`` with the id fully percent-encoded (ARNs have ``:/``)."""
    return f"/model/{quote(model_id, safe='')}/{operation}"


class RequestSigner:
    """Adds authentication headers: SigV4 from botocore's credential chain, or a bearer key."""

    def __init__(self, auth: BedrockAuth, region: str) -> None:
        self._auth = auth
        self._region = region
        self._credentials: Credentials | None = None
        self._lock = asyncio.Lock()

    def _resolve(self) -> Credentials | None:
        auth = self._auth
        if auth.access_key_id and auth.secret_access_key:
            return Credentials(auth.access_key_id, auth.secret_access_key, auth.session_token)
        # The standard chain: environment, shared config/profile, web identity (IRSA),
        # container and instance roles; refreshable ones renew themselves before expiry.
        credentials: Credentials | None = Session(profile=auth.profile).get_credentials()
        return credentials

    async def _frozen(self) -> ReadOnlyCredentials:
        if self._credentials is None:
            async with self._lock:
                if self._credentials is None:
                    try:
                        self._credentials = await asyncio.to_thread(self._resolve)
                    except BotoCoreError as exc:
                        raise _credentials_error(str(exc)) from None
                if self._credentials is None:
                    raise _credentials_error("no AWS credentials were found")
        credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            try:  # refreshing may call STS or the instance metadata service: not on the loop
                return await asyncio.to_thread(credentials.get_frozen_credentials)
            except BotoCoreError as exc:
                raise _credentials_error(str(exc)) from None
        return credentials.get_frozen_credentials()

    async def headers(self, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        if self._auth.type == "api_key":
            return {**headers, "Authorization": f"Bearer {self._auth.api_key}"}
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(await self._frozen(), SIGNING_SERVICE, self._region).add_auth(request)
        return dict(request.headers.items())


def _credentials_error(detail: str) -> UpstreamError:
    return UpstreamError(
        502,
        f"Cannot sign the Bedrock request: {detail}.",
        retryable=True,
        reason="credentials",
        code="upstream_credentials",
    )


class SessionPool:
    """One keep-alive aiohttp session per Bedrock endpoint, shared by its deployments."""

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, endpoint: str) -> aiohttp.ClientSession:
        session = self._sessions.get(endpoint)
        if session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            self._sessions[endpoint] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


@dataclass(slots=True)
class StreamEvent:
    """One decoded event-stream message: an event, or an exception Bedrock sent mid-stream."""

    kind: str  # "event", "exception" or "error"
    name: str  # event type, exception type or error code
    payload: dict[str, Any]


def decode_message(message: EventStreamMessage) -> StreamEvent:
    headers = message.headers
    kind = str(headers.get(":message-type", "event"))
    if kind == "event":
        name = str(headers.get(":event-type", ""))
    elif kind == "exception":
        name = str(headers.get(":exception-type", ""))
    else:
        name = str(headers.get(":error-code", "error"))
    payload: Any = {}
    if message.payload:
        try:
            payload = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            payload = {"message": message.payload.decode("utf-8", "replace")}
    if kind == "error" and "message" not in payload:
        payload = {"message": str(headers.get(":error-message", ""))}
    return StreamEvent(kind, name, payload if isinstance(payload, dict) else {})


class EventStreamDecoder:
    """Incremental AWS event-stream decoding; botocore checks both CRCs of every message."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> Iterator[StreamEvent]:
        self._buffer.add_data(data)
        for message in self._buffer:
            yield decode_message(message)


def signed_url(endpoint: str, path: str) -> tuple[str, URL]:
    """The URL string that is signed, and the same URL for aiohttp without re-quoting."""
    url = endpoint + path
    return url, URL(url, encoded=True)
