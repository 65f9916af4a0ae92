"""A dedicated Redis connection for one stream of script calls, one call at a time.

The limiter sends two streams of calls: admission batches and settlement batches, each from a
single task. Going through redis-py's client for them costs tens of microseconds of Python per
call (pool checkout and release, a task per write for the socket timeout, event dispatch, a
timeout per read, generic argument encoding) — more than the Lua script takes to run. A
channel keeps one connection of its own (made by redis-py from the client's settings, so TLS,
credentials and the database are the same), writes each call pre-encoded in one go and reads
its reply with redis-py's parser, under a single timer per call.

A call that fails or overruns its deadline drops the connection (its reply might still come
and would answer the wrong call); the next call connects afresh. There are no retries here:
the limiter's outage policy decides what a failure means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from hashlib import sha1
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError

# Settings of the pool's connections a channel does not take over: it bounds each call with
# its own deadline, and maintenance notifications belong to the pool that asked for them.
_NOT_INHERITED = ("socket_timeout", "maint_notifications_pool_handler")
_FALLBACK_TIMEOUT = 5.0  # seconds, for a client made without timeouts (redis-py's default)


def encode_arg(value: str | bytes) -> bytes:
    """One RESP bulk string (callers cache the encodings of what repeats, e.g. a plan's keys)."""
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(data), data)


class Script:
    """A Lua script's source, its SHA1 and the encoded ``EVALSHA <sha>`` prefix of its calls."""

    __slots__ = ("evalsha", "sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.evalsha = encode_arg("EVALSHA") + encode_arg(self.sha)


class ScriptChannel:
    """Script calls over one connection of its own, serialised.

    Each call must be answered within the client's socket timeout (plus its connect timeout
    when it has to connect first): the same bound redis-py would put on the read, as one timer
    per call.
    """

    def __init__(self, client: Redis) -> None:
        pool = client.connection_pool
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _NOT_INHERITED}
        self._class: Callable[..., AbstractConnection] = pool.connection_class
        self._kwargs = kwargs
        self._timeout = pool.connection_kwargs.get("socket_timeout") or _FALLBACK_TIMEOUT
        connect = pool.connection_kwargs.get("socket_connect_timeout") or _FALLBACK_TIMEOUT
        self._connect_timeout = connect
        self._connection: AbstractConnection | None = None
        self._lock = asyncio.Lock()
        self.calls = 0

    async def call(
        self, script: Script, keys: int, encoded_keys: list[bytes], args: int, encoded: list[bytes]
    ) -> Any:
        """``EVALSHA`` with ``keys`` declared keys and ``args`` arguments, each already encoded
        with :func:`encode_arg` (a chunk may hold several); loads the script if the server
        does not know it."""
        command = b"*%d\r\n%s%s%s%s" % (
            3 + keys + args,
            script.evalsha,
            encode_arg(str(keys)),
            b"".join(encoded_keys),
            b"".join(encoded),
        )
        async with self._lock:
            self.calls += 1
            connection = self._connection
            if connection is None:
                connection = self._connection = self._class(**self._kwargs)
            deadline = self._timeout
            if not connection.is_connected:
                deadline += self._connect_timeout
            try:
                async with asyncio.timeout(deadline):
                    try:
                        return await self._roundtrip(connection, command)
                    except NoScriptError:  # a restarted or flushed Redis: load, then retry
                        await self._roundtrip(connection, _command("SCRIPT", "LOAD", script.source))
                        return await self._roundtrip(connection, command)
            except BaseException:
                self._connection = None
                await connection.disconnect(nowait=True)
                raise

    @staticmethod
    async def _roundtrip(connection: AbstractConnection, command: bytes) -> Any:
        await connection.send_packed_command(command, check_health=False)
        return await connection.read_response()

    async def aclose(self) -> None:
        async with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()


def _command(*args: str) -> bytes:
    return b"*%d\r\n%s" % (len(args), b"".join(encode_arg(arg) for arg in args))
