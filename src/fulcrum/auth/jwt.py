"""Bearer JWTs from trusted issuers, verified against each issuer's JWKS, mapped to a Principal.

The unverified token is read for three things only, each checked against configuration
before any key is touched: ``iss`` picks the issuer, ``alg`` must be one that issuer is
configured for (so ``none`` and every HMAC algorithm are refused outright, which closes the
RSA-public-key-as-HMAC-secret confusion), and ``kid`` picks the key, whose type must fit the
algorithm. Only then does PyJWT verify the signature, with exactly that one algorithm, and the
registered claims (``exp``, ``nbf``, ``iat``, ``iss``, ``aud``; ``exp``, ``iss`` and ``aud``
required). Every refusal is a 401 (403 for an authenticated but unauthorised caller) with a
fixed message and a stable code: nothing of the token, its claims or the library's exception
text reaches the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp
import jwt
import orjson
from jwt import PyJWK

from fulcrum.api.errors import ApiError
from fulcrum.auth.base import unauthorized
from fulcrum.auth.jwks import JwksCache, key_matches
from fulcrum.auth.principal import Principal
from fulcrum.config import SCOPES, JwtIssuer

MAX_TOKEN_CHARS = 16 * 1024  # far above any real token; bounds the work an attacker can cause
MAX_KID_CHARS = 256
MAX_NAME_CHARS = 256  # tenant and subject values

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_REQUIRED_CLAIMS = ("exp", "iss", "aud")
_KNOWN_SCOPES = frozenset(SCOPES)


def _b64_json(segment: str) -> Any:
    """A base64url (unpadded) segment decoded as JSON; raises ValueError when it is neither."""
    if not _SEGMENT.fullmatch(segment):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    return orjson.loads(raw)


def _unverified_header(token: str) -> dict[str, Any] | None:
    """The JOSE header of a compact JWS, or None when the token does not have that shape."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        return None
    head, payload, signature = token.split(".")
    if not head or not payload or not _SEGMENT.fullmatch(payload + signature):
        return None
    try:
        header = _b64_json(head)
    except ValueError:
        return None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        return None
    return header


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``: a literal name first (``https://example.com/tenant``), else a
    dotted path into nested objects (``org.id``); None when absent."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _is_name(value: Any) -> bool:
    """A usable tenant or subject: a non-empty, printable string without surrounding space."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NAME_CHARS
        and value == value.strip()
        and value.isprintable()
    )


def _malformed() -> ApiError:
    return unauthorized("The bearer token is not a well-formed signed JWT.", "invalid_token")


def _unknown_key() -> ApiError:
    return unauthorized(
        "The token's signing key (kid) is not a current key of its issuer for its algorithm.",
        "unknown_signing_key",
    )


def _forbidden(message: str, code: str) -> ApiError:
    return ApiError(403, message, type="permission_error", code=code)


class JwtVerifier:
    """Verifies JWTs of the configured issuers (a ``TokenVerifier`` of the auth chain).

    ``tenant_known`` answers whether a tenant exists (configuration or store); it is required
    when any issuer has ``known_tenants_only``. ``session`` and ``clock`` are for tests: the
    JWKS caches share the session (not closed here) and read the clock for expiry.
    """

    def __init__(
        self,
        issuers: Sequence[JwtIssuer],
        *,
        tenant_known: Callable[[str], bool] | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tenant_known is None and any(entry.known_tenants_only for entry in issuers):
            raise ValueError("known_tenants_only needs a tenant_known callback")
        self._tenant_known = tenant_known
        self._issuers: dict[str, tuple[JwtIssuer, JwksCache]] = {
            entry.issuer: (entry, JwksCache(entry, session=session, clock=clock))
            for entry in issuers
        }

    def cache(self, issuer: str) -> JwksCache:
        """The JWKS cache of one configured issuer (diagnostics, tests)."""
        return self._issuers[issuer][1]

    async def prefetch(self) -> None:
        """Load every issuer's keys now (at start-up), so the first request need not wait."""
        await asyncio.gather(*(cache.refresh() for _, cache in self._issuers.values()))

    async def close(self) -> None:
        for _, cache in self._issuers.values():
            await cache.close()

    def owns(self, credential: str) -> bool:
        """Whether the credential is shaped like a JWS compact token (header with an ``alg``)."""
        return _unverified_header(credential) is not None

    async def verify(self, credential: str) -> Principal:
        """The principal the token names, or a 401/403 ApiError."""
        header = _unverified_header(credential)
        if header is None:
            raise _malformed()
        try:
            unverified = _b64_json(credential.split(".")[1])
        except ValueError:
            raise _malformed() from None
        if not isinstance(unverified, dict):
            raise _malformed()
        issuer, keys = self._issuer_of(unverified)
        algorithm = self._check_header(header, issuer)
        key = await self._signing_key(keys, header.get("kid"), algorithm)
        claims = _decode(credential, key, algorithm, issuer)
        return self._principal(claims, issuer)

    def _issuer_of(self, unverified: Mapping[str, Any]) -> tuple[JwtIssuer, JwksCache]:
        # Only selects configuration: jwt.decode checks `iss` again once the signature holds.
        name = unverified.get("iss")
        found = self._issuers.get(name) if isinstance(name, str) else None
        if found is None:
            raise unauthorized("The token's issuer is not trusted.", "invalid_issuer")
        return found

    @staticmethod
    def _check_header(header: Mapping[str, Any], issuer: JwtIssuer) -> str:
        algorithm = header["alg"]
        if algorithm not in issuer.algorithms:
            raise unauthorized(
                "The token's signing algorithm is not accepted for its issuer.",
                "unsupported_algorithm",
            )
        if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension, so must refuse
            raise _malformed()
        kind = header.get("typ")
        if kind is not None and (not isinstance(kind, str) or kind.lower() not in _ACCEPTED_TYPES):
            raise unauthorized("The token's type (typ) is not an access token.", "invalid_token")
        return str(algorithm)

    @staticmethod
    async def _signing_key(keys: JwksCache, kid: Any, algorithm: str) -> PyJWK:
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_CHARS:
            raise _unknown_key()
        for key in await keys.keys_for(kid):
            if key.algorithm_name == algorithm and key_matches(algorithm, key):
                return key
        raise _unknown_key()

    def _principal(self, claims: Mapping[str, Any], issuer: JwtIssuer) -> Principal:
        tenant = claim(claims, issuer.tenant_claim)
        if not _is_name(tenant):
            raise unauthorized("The token names no valid tenant.", "missing_tenant")
        subject = claim(claims, issuer.subject_claim)
        if not _is_name(subject):
            raise unauthorized("The token names no valid subject.", "missing_subject")
        scopes = _scopes(claims, issuer)
        if issuer.known_tenants_only:
            assert self._tenant_known is not None  # enforced by __init__
            if not self._tenant_known(tenant):
                raise _forbidden(
                    "The token's tenant is not known to this gateway.", "unknown_tenant"
                )
        return Principal(tenant=tenant, subject=f"jwt:{issuer.issuer}:{subject}", scopes=scopes)


def _decode(token: str, key: PyJWK, algorithm: str, issuer: JwtIssuer) -> dict[str, Any]:
    """Verify signature and registered claims; map each failure to a fixed 401."""
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=[algorithm],
            audience=list(issuer.audience),
            issuer=issuer.issuer,
            leeway=issuer.leeway,
            options={"require": list(_REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("The token has expired.", "token_expired") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized("The token is not valid yet.", "token_not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise unauthorized(
            "The token is not intended for this gateway (aud).", "invalid_audience"
        ) from None
    except jwt.InvalidIssuerError:
        raise unauthorized("The token's issuer is not trusted.", "invalid_issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        name = exc.claim if exc.claim in _REQUIRED_CLAIMS else "required"
        raise unauthorized(f"The token lacks the '{name}' claim.", "invalid_token") from None
    except jwt.InvalidSignatureError:
        raise unauthorized("The token's signature is invalid.", "invalid_signature") from None
    except jwt.InvalidAlgorithmError:
        raise unauthorized(
            "The token's signing algorithm is not accepted for its issuer.",
            "unsupported_algorithm",
        ) from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise _malformed() from None


def _scopes(claims: Mapping[str, Any], issuer: JwtIssuer) -> frozenset[str]:
    """The gateway scopes the token grants; empty means unrestricted, so it is only returned
    for a token without the claim (and only when no ``scope_prefix`` asks for scopes)."""
    raw = claim(claims, issuer.scopes_claim)
    if raw is None:
        if issuer.scope_prefix:
            raise _no_scope()
        return frozenset()
    if isinstance(raw, str):
        names = raw.split()
    elif isinstance(raw, list) and all(isinstance(name, str) for name in raw):
        names = raw
    else:
        raise unauthorized("The token's scope claim is malformed.", "invalid_token")
    prefix = issuer.scope_prefix
    granted = frozenset(
        name[len(prefix) :] for name in names if name.startswith(prefix)
    ).intersection(_KNOWN_SCOPES)
    if not granted:  # granting nothing must not turn into "everything"
        raise _no_scope()
    return granted


def _no_scope() -> ApiError:
    return _forbidden(
        f"The token grants none of the gateway's scopes ({', '.join(SCOPES)}).",
        "insufficient_scope",
    )
