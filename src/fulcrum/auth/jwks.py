"""The signing keys of one JWT issuer, fetched from its JWKS URL and cached by ``kid``.

Fetching is asynchronous (aiohttp, never the event loop's thread blocked on urllib) and
bounded: keys are refetched when the issuer's ``Cache-Control: max-age`` runs out, and an
unknown ``kid`` (key rotation) triggers at most one refetch per ``jwks_min_refresh`` seconds,
shared by every concurrent caller, so a flood of tokens with made-up key ids cannot turn the
gateway into an amplifier against the issuer. A failed fetch keeps the keys already known.

Only public signature keys the issuer is configured for survive parsing: symmetric (``oct``)
keys, encryption keys, private keys, weak RSA keys and algorithms outside the issuer's list
are dropped, so no later step can be tricked into verifying with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from fulcrum.config import JwtIssuer

log = logging.getLogger("fulcrum.auth.jwks")

MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1024 * 1024  # a JWKS is a few kilobytes; refuse to buffer anything huge
MAX_CACHE_SECONDS = 24 * 3600.0  # a longer max-age would keep a withdrawn key trusted too long

# The key type (and curve) each accepted algorithm needs, as JWK members.
_KEY_SHAPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[,=]|$)", re.IGNORECASE)


class JwksError(Exception):
    """A JWKS response that cannot be used (status, size, or shape)."""


def cache_lifetime(cache_control: str | None, issuer: JwtIssuer) -> float:
    """Seconds the fetched keys stay fresh, from the response's ``Cache-Control``.

    ``no-store``/``no-cache`` mean "as short as allowed" (``jwks_min_refresh``); no
    ``max-age`` means ``jwks_default_max_age``. The result is kept within
    [``jwks_min_refresh``, 24 h] so an issuer can neither make us fetch on every request
    nor pin a key it has since withdrawn for days.
    """
    floor = issuer.jwks_min_refresh
    if cache_control:
        if _NO_CACHE.search(cache_control):
            return floor
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(max(float(match.group(1)), floor), max(MAX_CACHE_SECONDS, floor))
    return max(issuer.jwks_default_max_age, floor)


def key_matches(algorithm: str, key: PyJWK) -> bool:
    """Whether ``key`` is a public key of the family ``algorithm`` needs (RSA, P-256, Ed25519)."""
    material = key.key
    if algorithm == "RS256":
        return isinstance(material, rsa.RSAPublicKey) and material.key_size >= MIN_RSA_BITS
    if algorithm == "ES256":
        return isinstance(material, ec.EllipticCurvePublicKey) and isinstance(
            material.curve, ec.SECP256R1
        )
    if algorithm == "EdDSA":
        return isinstance(material, ed25519.Ed25519PublicKey)
    return False


def _algorithm_of(jwk: Mapping[str, Any]) -> str | None:
    """The JWK's declared ``alg``, or the one its key type implies; None when neither fits."""
    declared = jwk.get("alg")
    if declared is not None:
        return declared if isinstance(declared, str) else None
    for algorithm, (kty, crv) in _KEY_SHAPES.items():
        if jwk.get("kty") == kty and (crv is None or jwk.get("crv") == crv):
            return algorithm
    return None


def _usable(jwk: Any, algorithms: Iterable[str]) -> PyJWK | None:
    """The JWK as a verification key, or None when it must not be used to verify tokens."""
    if not isinstance(jwk, dict):
        return None
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    if jwk.get("kty") == "oct" or "d" in jwk:  # symmetric or private material: never
        return None
    if "use" in jwk and jwk["use"] != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    algorithm = _algorithm_of(jwk)
    if algorithm is None or algorithm not in algorithms:
        return None
    kty, crv = _KEY_SHAPES[algorithm]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        return None
    try:
        key = PyJWK(jwk, algorithm=algorithm)
    except (PyJWTError, ValueError, TypeError):
        return None
    return key if key_matches(algorithm, key) else None


def parse_jwks(document: Any, algorithms: Iterable[str]) -> dict[str, tuple[PyJWK, ...]]:
    """The usable keys of a JWKS document by ``kid``; raises JwksError when it is not a JWKS."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("not a JWK set")
    allowed = frozenset(algorithms)
    keys: dict[str, list[PyJWK]] = {}
    for jwk in document["keys"]:
        key = _usable(jwk, allowed)
        if key is not None:
            keys.setdefault(str(key.key_id), []).append(key)
    return {kid: tuple(found) for kid, found in keys.items()}


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class JwksCache:
    """The current signing keys of one issuer, refreshed by expiry and by unknown ``kid``."""

    def __init__(
        self,
        issuer: JwtIssuer,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._url = str(issuer.jwks_url)
        self._session = session
        self._owns_session = session is None
        self._clock = clock
        self._keys: dict[str, tuple[PyJWK, ...]] = {}
        self._expires_at = -math.inf  # nothing loaded yet
        self._last_attempt = -math.inf
        self._inflight: asyncio.Task[None] | None = None
        self._failing = False
        self._warned_empty = False
        self._closed = False
        self.fetches = 0  # attempts made, for tests and diagnostics

    @property
    def kids(self) -> frozenset[str]:
        """The key ids currently trusted."""
        return frozenset(self._keys)

    async def keys_for(self, kid: str) -> tuple[PyJWK, ...]:
        """The issuer's usable keys with this ``kid``; empty when it has none (after the rules
        for refetching have been applied)."""
        fetched = False
        if self._clock() >= self._expires_at:
            await self.refresh()
            fetched = True
        found = self._keys.get(kid)
        if found:
            return found
        # Join a fetch already in flight, or start one unless one ran too recently: a kid
        # the issuer has just rotated in is found, a made-up kid costs at most one fetch.
        joining = self._inflight is not None
        may_fetch = self._clock() - self._last_attempt >= self.issuer.jwks_min_refresh
        if joining or (may_fetch and not fetched):
            await self.refresh()
        return self._keys.get(kid, ())

    async def refresh(self) -> None:
        """Fetch the JWKS now, or join the fetch already in flight; never raises for a failed
        fetch (the previous keys stay)."""
        if self._closed:
            return
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.get_running_loop().create_task(self._fetch())
        # shield: a caller that gives up (client disconnect) must not cancel the shared fetch
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                return  # close() stopped the fetch; the caller carries on without new keys
            raise

    async def close(self) -> None:
        """Stop any fetch in flight and close the HTTP session if this cache created it."""
        self._closed = True
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def _fetch(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            keys, lifetime = await self._download()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure keeps the old keys; the reason is logged once
            self._expires_at = self._clock() + self.issuer.jwks_min_refresh
            self._note_failure(exc)
        else:
            self._keys = keys
            self._expires_at = self._clock() + lifetime
            self._note_success(keys)
        finally:
            self._inflight = None

    async def _download(self) -> tuple[dict[str, tuple[PyJWK, ...]], float]:
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.issuer.jwks_timeout)
        headers = {"Accept": "application/jwk-set+json, application/json"}
        async with session.get(self._url, timeout=timeout, headers=headers) as response:
            if response.status != 200:
                raise JwksError(f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_JWKS_BYTES:
                raise JwksError("response too large")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("response too large")
            lifetime = cache_lifetime(response.headers.get("Cache-Control"), self.issuer)
        try:
            document = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            raise JwksError("response is not JSON") from None
        return parse_jwks(document, self.issuer.algorithms), lifetime

    def _note_failure(self, exc: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        reason = str(exc) if isinstance(exc, JwksError) else type(exc).__name__
        log.warning(
            "JWKS fetch for issuer %s from %s failed (%s); keeping %d previously known key(s)",
            self.issuer.issuer,
            redact_url(self._url),
            reason,
            len(self._keys),
        )

    def _note_success(self, keys: Mapping[str, tuple[PyJWK, ...]]) -> None:
        if self._failing:
            self._failing = False
            log.info("JWKS fetch for issuer %s succeeded again", self.issuer.issuer)
        if keys:
            self._warned_empty = False
        elif not self._warned_empty:
            self._warned_empty = True
            log.warning(
                "JWKS of issuer %s at %s holds no usable signature key for %s",
                self.issuer.issuer,
                redact_url(self._url),
                ", ".join(self.issuer.algorithms),
            )
