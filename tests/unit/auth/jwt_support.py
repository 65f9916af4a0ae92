"""Test support for JWT/JWKS: real keys, signed tokens, a real local JWKS server, a fake clock.

The JWKS server is an aiohttp application on 127.0.0.1, on a port the kernel picked for the
socket it is handed (no probe-then-bind race). Tests change what it publishes (keys, status,
Cache-Control) between requests, count its fetches, and can hold a response until released.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.api_jws import PyJWS

from fulcrum.api.errors import ApiError

ISSUER = "https://issuer.example.test/"
OTHER_ISSUER = "https://other-issuer.example.test/"
AUDIENCE = "fulcrum-gateway"


# --------------------------------------------------------------------------------------------
# Keys and tokens
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A private key with the ``kid`` and ``alg`` it signs under."""

    kid: str
    alg: str
    private: Any

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        """The public half as a JWK (``use: sig``, ``alg``), with ``extra`` members merged."""
        public = self.private.public_key()
        exporter = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.alg]
        jwk = dict(exporter.to_jwk(public, as_dict=True))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        jwk.update(extra)
        return {name: value for name, value in jwk.items() if value is not None}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        """A compact JWS of ``claims``; ``headers`` override (None removes) header members."""
        merged = {"kid": self.kid, **headers}
        fields = {name: value for name, value in merged.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=fields)

    def sign_unchecked(self, claims: dict[str, Any]) -> str:
        """Sign claims PyJWT would refuse to encode (e.g. a non-string ``iss``)."""
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return PyJWS().encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid})

    def with_kid(self, kid: str) -> SigningKey:
        return SigningKey(kid, self.alg, self.private)


@cache
def rsa_private(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole run (generation is the slow part of these tests)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ec_private(name: str, curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


@cache
def ed_private(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def rsa_key(kid: str = "rsa-1", name: str = "issuer") -> SigningKey:
    return SigningKey(kid, "RS256", rsa_private(name))


def ec_key(kid: str = "ec-1", name: str = "issuer") -> SigningKey:
    return SigningKey(kid, "ES256", ec_private(name))


def ed_key(kid: str = "ed-1", name: str = "issuer") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed_private(name))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for ISSUER and AUDIENCE, five minutes to live; None removes a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-7f3a9c",
        "tenant": "acme-tenant",
        "scope": "chat models",
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def oct_jwk(kid: str, secret: bytes, alg: str | None = "HS256") -> dict[str, Any]:
    jwk: dict[str, Any] = {"kty": "oct", "kid": kid, "k": b64url(secret), "use": "sig"}
    if alg:
        jwk["alg"] = alg
    return jwk


# --------------------------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------------------------


def leaves(value: Any) -> Iterator[str]:
    """Every scalar inside a JSON-like value, as text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def assert_leaks_nothing(error: ApiError, token: str, *secrets: Any) -> None:
    """Neither the token, any of its segments, nor any of ``secrets``' values (claims, JWKs)
    appears in what the client sees; words of the gateway's own scope vocabulary may."""
    from fulcrum.config import SCOPES

    visible = " ".join([error.body().decode(), str(error), repr(error.headers)])
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in visible, f"token material leaked: {visible}"
    for secret in secrets:
        for text in leaves(secret):
            if len(text) >= 4 and text not in SCOPES:
                assert text not in visible, f"{text!r} leaked: {visible}"
    assert error.__cause__ is None


# --------------------------------------------------------------------------------------------
# Clock
# --------------------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------------------------
# The JWKS server
# --------------------------------------------------------------------------------------------


@dataclass
class JwksServer:
    """A real HTTP server publishing one JWKS at ``/jwks.json``."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = None
    status: int = 200
    body: bytes | None = None  # raw body instead of the JWKS (malformed answers)
    hold: asyncio.Event | None = None  # when set, each response waits for this event
    fetches: int = 0
    waiting: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def publish(self, *jwks: dict[str, Any], cache_control: str | None = None) -> None:
        self.keys = list(jwks)
        self.cache_control = cache_control

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        if self.hold is not None:
            self.waiting += 1
            try:
                await self.hold.wait()
            finally:
                self.waiting -= 1
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        body = self.body if self.body is not None else json.dumps({"keys": self.keys}).encode()
        return web.Response(
            status=self.status, body=body, headers=headers, content_type="application/json"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/jwks.json", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Stop listening (idempotent): later fetches are refused by the kernel."""
        runner, self._runner = self._runner, None
        if self.hold is not None:
            self.hold.set()
        if runner is not None:
            await runner.cleanup()


async def wait_for(condition: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    """Yield to the event loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {what}")
        await asyncio.sleep(0.005)
