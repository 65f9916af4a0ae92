"""JWT bearer verification against a real JWKS server: what is accepted, and every refusal.

Tokens are signed with real RSA, P-256 and Ed25519 keys; the issuer's JWKS is served by a
local aiohttp server whose fetches are counted. Every refusal is also checked for leaks: the
client must see neither the token nor any claim or key value.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import given, settings
from hypothesis import strategies as st

from fulcrum.api.errors import ApiError
from fulcrum.auth.jwt import JwtVerifier, claim
from fulcrum.auth.principal import Principal
from fulcrum.config import JwtIssuer
from tests.unit.auth.jwt_support import (
    AUDIENCE,
    ISSUER,
    OTHER_ISSUER,
    FakeClock,
    JwksServer,
    SigningKey,
    assert_leaks_nothing,
    b64json,
    b64url,
    claims,
    ec_key,
    ed_key,
    oct_jwk,
    rsa_key,
    wait_for,
)

KNOWN_TENANTS = {"acme-tenant", "globex-tenant"}
MakeVerifier = Callable[..., JwtVerifier]


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    """The issuer's JWKS server, publishing one key of each accepted algorithm."""
    server = JwksServer()
    server.publish(rsa_key().public_jwk(), ec_key().public_jwk(), ed_key().public_jwk())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_verifier(jwks: JwksServer, clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    """Factory: a verifier for ISSUER at the test server (issuer fields overridable)."""
    made: list[JwtVerifier] = []

    def make(
        *extra: JwtIssuer, tenant_known: Callable[[str], bool] | None = None, **fields: Any
    ) -> JwtVerifier:
        settings: dict[str, Any] = {
            "issuer": ISSUER,
            "jwks_url": jwks.url,
            "audience": (AUDIENCE, "another-audience"),
            "jwks_timeout": 2.0,
            **fields,
        }
        verifier = JwtVerifier(
            [JwtIssuer(**settings), *extra],
            tenant_known=tenant_known or KNOWN_TENANTS.__contains__,
            clock=clock,
        )
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.close()


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> JwtVerifier:
    return make_verifier()


async def rejected(
    verify: Awaitable[Principal], token: str, *secrets: Any, status: int = 401
) -> ApiError:
    """The ApiError ``verify`` raised, checked for status and for leaks."""
    with pytest.raises(ApiError) as info:
        await verify
    error = info.value
    assert error.status == status, (error.status, error.code, error.message)
    assert_leaks_nothing(error, token, *secrets)
    return error


# --------------------------------------------------------------------------------------------
# Accepted tokens
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [rsa_key(), ec_key(), ed_key()], ids=["RS256", "ES256", "EdDSA"])
async def test_valid_tokens_of_each_algorithm_are_accepted(
    verifier: JwtVerifier, key: SigningKey
) -> None:
    token = key.sign(claims(scope="chat models openid"))
    assert verifier.owns(token)
    principal = await verifier.verify(token)
    assert principal.tenant == "acme-tenant"
    assert principal.subject == f"jwt:{ISSUER}:user-7f3a9c"
    assert principal.scopes == frozenset({"chat", "models"})
    assert principal.key_id is None


async def test_any_configured_audience_in_an_audience_list_is_accepted(
    verifier: JwtVerifier,
) -> None:
    token = rsa_key().sign(claims(aud=["someone-else", "another-audience"]))
    assert (await verifier.verify(token)).tenant == "acme-tenant"


async def test_each_issuer_is_checked_against_its_own_keys(
    make_verifier: MakeVerifier,
) -> None:
    other = JwksServer()
    other.publish(ec_key("other-1", name="other").public_jwk())
    await other.start()
    try:
        second = JwtIssuer(
            issuer=OTHER_ISSUER, jwks_url=other.url, audience=AUDIENCE, tenant_claim="org.id"
        )
        verifier = make_verifier(second)
        own = ec_key("other-1", name="other")
        token = own.sign(claims(iss=OTHER_ISSUER, tenant=None, org={"id": "globex-tenant"}))
        principal = await verifier.verify(token)
        assert (principal.tenant, principal.subject) == (
            "globex-tenant",
            f"jwt:{OTHER_ISSUER}:user-7f3a9c",
        )
        # The first issuer's key, claiming to be the second issuer: not among its keys.
        forged = rsa_key().sign(claims(iss=OTHER_ISSUER, org={"id": "globex-tenant"}))
        error = await rejected(verifier.verify(forged), forged, claims())
        assert error.code == "unknown_signing_key"
        # And the second issuer's kid (and key) under the first issuer's name.
        crossed = own.sign(claims())
        error = await rejected(verifier.verify(crossed), crossed, claims())
        assert error.code == "unknown_signing_key"
    finally:
        await other.stop()


# --------------------------------------------------------------------------------------------
# Algorithm attacks
# --------------------------------------------------------------------------------------------


async def test_alg_none_is_refused_before_any_key_is_fetched(
    verifier: JwtVerifier, jwks: JwksServer
) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{b64json({'alg': alg, 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64json(claims())}."
        assert verifier.owns(token)
        error = await rejected(verifier.verify(token), token, claims())
        assert error.code == "unsupported_algorithm"
    assert jwks.fetches == 0


async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    verifier: JwtVerifier, jwks: JwksServer
) -> None:
    """The classic key-confusion attack: the public PEM used as an HMAC secret."""
    key = rsa_key()
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{b64json(claims())}"
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    error = await rejected(verifier.verify(token), token, claims(), key.public_jwk())
    assert error.code == "unsupported_algorithm"
    assert jwks.fetches == 0


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "RS384", "PS256", "ES512", "ES256K"])
async def test_algorithms_outside_the_issuers_list_are_refused(
    verifier: JwtVerifier, alg: str
) -> None:
    token = f"{b64json({'alg': alg, 'kid': 'rsa-1'})}.{b64json(claims())}.{b64url(b'x' * 64)}"
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == "unsupported_algorithm"


async def test_an_issuer_restricted_to_es256_refuses_rs256(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(algorithms=("ES256",))
    assert (await verifier.verify(ec_key().sign(claims()))).tenant == "acme-tenant"
    token = rsa_key().sign(claims())
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == "unsupported_algorithm"


async def test_a_kid_of_another_key_type_does_not_verify(verifier: JwtVerifier) -> None:
    """ES256 header with the RSA key's kid: the key type must fit the algorithm."""
    token = ec_key().with_kid("rsa-1").sign(claims())
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == "unknown_signing_key"


async def test_a_kid_naming_a_symmetric_key_is_refused(
    make_verifier: MakeVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    secret = b"0123456789abcdef0123456789abcdef"
    jwks.publish(rsa_key().public_jwk(), oct_jwk("hmac-1", secret), oct_jwk("hmac-2", secret, None))
    verifier = make_verifier()
    for kid in ("hmac-1", "hmac-2"):
        clock.advance(60)  # past jwks_min_refresh: each unknown kid may refetch once
        attacker = rsa_key(kid, name="attacker")
        token = attacker.sign(claims())
        error = await rejected(verifier.verify(token), token, claims(), oct_jwk(kid, secret))
        assert error.code == "unknown_signing_key"
        hs = f"{b64json({'alg': 'HS256', 'kid': kid})}.{b64json(claims())}"
        mac = hmac.new(secret, hs.encode(), hashlib.sha256).digest()
        token = f"{hs}.{b64url(mac)}"
        error = await rejected(verifier.verify(token), token, claims(), oct_jwk(kid, secret))
        assert error.code == "unsupported_algorithm"
    assert verifier.cache(ISSUER).kids == {"rsa-1"}


async def test_a_key_embedded_in_the_header_is_ignored(verifier: JwtVerifier) -> None:
    attacker = rsa_key("attacker-1", name="attacker")
    for member in ("jwk", "jku", "x5u"):
        value = attacker.public_jwk() if member == "jwk" else "https://attacker.test/keys"
        token = attacker.sign(claims(), **{member: value})
        error = await rejected(verifier.verify(token), token, claims())
        assert error.code == "unknown_signing_key"


async def test_a_token_signed_by_another_key_under_this_kid_is_refused(
    verifier: JwtVerifier,
) -> None:
    token = rsa_key("rsa-1", name="attacker").sign(claims())
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == "invalid_signature"


async def test_a_tampered_payload_is_refused(verifier: JwtVerifier) -> None:
    genuine = rsa_key().sign(claims())
    assert (await verifier.verify(genuine)).tenant == "acme-tenant"
    head, _, signature = genuine.split(".")
    forged_claims = claims(tenant="globex-tenant", scope="chat completions embeddings models")
    token = f"{head}.{b64json(forged_claims)}.{signature}"
    error = await rejected(verifier.verify(token), token, forged_claims)
    assert error.code == "invalid_signature"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"crit": ["exp"]}, "invalid_token"),
        ({"crit": ["b64"], "b64": True}, "invalid_token"),  # PyJWT alone would accept this
        ({"typ": "dpop+jwt"}, "invalid_token"),
        ({"typ": "logout+jwt"}, "invalid_token"),
        ({"kid": None}, "unknown_signing_key"),
        ({"kid": ""}, "unknown_signing_key"),
        ({"kid": 42}, "unknown_signing_key"),
        ({"kid": "k" * 300}, "unknown_signing_key"),
    ],
)
async def test_unsafe_headers_are_refused(
    verifier: JwtVerifier, headers: dict[str, Any], code: str
) -> None:
    key = rsa_key()
    signing_input = f"{b64json({'alg': 'RS256', 'kid': key.kid, **headers})}.{b64json(claims())}"
    signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64url(signature)}"
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == code


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "application/at+jwt"])
async def test_access_token_types_are_accepted(verifier: JwtVerifier, typ: str) -> None:
    assert (await verifier.verify(rsa_key().sign(claims(), typ=typ))).tenant == "acme-tenant"


# --------------------------------------------------------------------------------------------
# Registered claims
# --------------------------------------------------------------------------------------------


async def test_time_claims_honour_the_leeway(verifier: JwtVerifier) -> None:
    now = int(time.time())
    key = rsa_key()
    accepted = [
        claims(exp=now - 10),  # expired, but within the 30 s leeway
        claims(nbf=now + 10),  # not yet valid, but within the leeway
        claims(iat=now + 10),
    ]
    for body in accepted:
        assert (await verifier.verify(key.sign(body))).tenant == "acme-tenant"
    refused = [
        (claims(exp=now - 120), "token_expired"),
        (claims(nbf=now + 120), "token_not_yet_valid"),
        (claims(iat=now + 120), "token_not_yet_valid"),
    ]
    for body, code in refused:
        token = key.sign(body)
        assert (await rejected(verifier.verify(token), token, body)).code == code


async def test_a_zero_leeway_is_exact(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(leeway=0)
    token = rsa_key().sign(claims(exp=int(time.time()) - 5))
    assert (await rejected(verifier.verify(token), token, claims())).code == "token_expired"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"aud": "someone-else"}, "invalid_audience"),
        ({"aud": ["someone-else", "third"]}, "invalid_audience"),
        ({"aud": None}, "invalid_token"),
        ({"aud": 7}, "invalid_audience"),
        ({"iss": "https://evil.example.test/"}, "invalid_issuer"),
        ({"iss": ISSUER.rstrip("/")}, "invalid_issuer"),
        ({"iss": None}, "invalid_issuer"),
        ({"iss": ["https://issuer.example.test/"]}, "invalid_issuer"),
        ({"exp": None}, "invalid_token"),
        ({"exp": "tomorrow"}, "invalid_token"),
        ({"nbf": "soon"}, "invalid_token"),
        ({"sub": None}, "missing_subject"),
        ({"sub": ""}, "missing_subject"),
        ({"sub": 12345}, "invalid_token"),
    ],
)
async def test_bad_registered_claims_are_refused(
    verifier: JwtVerifier, overrides: dict[str, Any], code: str
) -> None:
    body = claims(**overrides)
    token = rsa_key().sign_unchecked(body)
    error = await rejected(verifier.verify(token), token, body)
    assert error.code == code


async def test_a_missing_exp_is_named_in_the_message(verifier: JwtVerifier) -> None:
    token = rsa_key().sign(claims(exp=None))
    error = await rejected(verifier.verify(token), token, claims())
    assert "'exp'" in error.message


# --------------------------------------------------------------------------------------------
# Tenant, subject and scopes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant", [None, "", " ", " acme-tenant", "acme\ntenant", 42, ["acme-tenant"], "t" * 300]
)
async def test_a_missing_or_invalid_tenant_is_401(verifier: JwtVerifier, tenant: Any) -> None:
    body = claims(tenant=tenant)
    token = rsa_key().sign(body)
    error = await rejected(verifier.verify(token), token, body)
    assert error.code == "missing_tenant"


async def test_an_unknown_tenant_is_403(verifier: JwtVerifier) -> None:
    body = claims(tenant="initech-tenant")
    token = rsa_key().sign(body)
    error = await rejected(verifier.verify(token), token, body, status=403)
    assert (error.code, error.type) == ("unknown_tenant", "permission_error")


async def test_any_tenant_passes_when_not_restricted_to_known_ones(
    make_verifier: MakeVerifier,
) -> None:
    verifier = make_verifier(known_tenants_only=False, tenant_known=lambda _: False)
    token = rsa_key().sign(claims(tenant="initech-tenant"))
    assert (await verifier.verify(token)).tenant == "initech-tenant"


def test_known_tenants_only_needs_a_directory() -> None:
    issuer = JwtIssuer(issuer=ISSUER, jwks_url="http://127.0.0.1:9/jwks.json", audience=AUDIENCE)
    with pytest.raises(ValueError, match="tenant_known"):
        JwtVerifier([issuer])
    JwtVerifier([issuer.model_copy(update={"known_tenants_only": False})])


async def test_claim_paths_are_configurable(make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(
        tenant_claim="https://fulcrum.test/org.id", subject_claim="client_id", scopes_claim="scp"
    )
    body = claims(
        tenant=None,
        sub=None,
        scope=None,
        client_id="svc-batch",
        scp=["embeddings", "unknown"],
        **{
            "https://fulcrum.test/org": {"id": "wrong"},
            "https://fulcrum.test/org.id": "acme-tenant",
        },
    )
    principal = await verifier.verify(rsa_key().sign(body))
    assert principal.tenant == "acme-tenant"
    assert principal.subject == f"jwt:{ISSUER}:svc-batch"
    assert principal.scopes == {"embeddings"}
    nested = make_verifier(tenant_claim="org.id")
    body = claims(tenant=None, org={"id": "globex-tenant", "name": "Globex"})
    assert (await nested.verify(rsa_key().sign(body))).tenant == "globex-tenant"


def test_claim_lookup() -> None:
    data = {"a": {"b": {"c": "deep"}}, "x.y": "literal", "list": ["no"]}
    assert claim(data, "a.b.c") == "deep"
    assert claim(data, "x.y") == "literal"
    assert claim(data, "a.missing") is None
    assert claim(data, "list.0") is None
    assert claim(data, "a.b.c.d") is None


@pytest.mark.parametrize(
    ("prefix", "scope", "expected"),
    [
        ("", "chat models", {"chat", "models"}),
        ("", ["completions", "embeddings", "admin"], {"completions", "embeddings"}),
        ("", None, set()),  # no claim at all: unrestricted, like a key without scopes
        ("fulcrum:", "fulcrum:chat chat openid fulcrum:admin", {"chat"}),
        ("fulcrum:", ["fulcrum:models", "fulcrum:embeddings"], {"models", "embeddings"}),
    ],
)
async def test_scopes_are_mapped(
    make_verifier: MakeVerifier, prefix: str, scope: Any, expected: set[str]
) -> None:
    verifier = make_verifier(scope_prefix=prefix)
    principal = await verifier.verify(rsa_key().sign(claims(scope=scope)))
    assert principal.scopes == expected


@pytest.mark.parametrize(
    ("prefix", "scope"),
    [
        ("", "openid profile"),
        ("", ""),
        ("", []),
        ("fulcrum:", "chat models"),
        ("fulcrum:", None),
        ("fulcrum:", "fulcrum:admin"),
    ],
)
async def test_a_token_granting_no_gateway_scope_is_403_not_unrestricted(
    make_verifier: MakeVerifier, prefix: str, scope: Any
) -> None:
    verifier = make_verifier(scope_prefix=prefix)
    body = claims(scope=scope)
    token = rsa_key().sign(body)
    error = await rejected(verifier.verify(token), token, body, status=403)
    assert error.code == "insufficient_scope"


@pytest.mark.parametrize("scope", [42, ["chat", 7], {"chat": True}])
async def test_a_malformed_scope_claim_is_401(verifier: JwtVerifier, scope: Any) -> None:
    body = claims(scope=scope)
    token = rsa_key().sign(body)
    assert (await rejected(verifier.verify(token), token, body)).code == "invalid_token"


# --------------------------------------------------------------------------------------------
# Shape
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [
        "sk-acme-0123456789",
        "fk_abc.def",
        "a.b.c",  # header is not JSON
        f"{b64json({'typ': 'JWT'})}.{b64json({})}.sig",  # no alg
        f"{b64json(['alg'])}.{b64json({})}.sig",
        f"{b64json({'alg': 'RS256'})}..sig",
        f"{b64json({'alg': 'RS256'})}.{b64json({})}.sig.extra",
        f"{b64json({'alg': 'RS256'})}.{b64json({})}.si+g",
        f"{b64json({'alg': 'RS256'})}.{b64json({})}.{'A' * 20_000}",
    ],
)
async def test_credentials_that_are_not_jws_tokens_are_not_owned(
    verifier: JwtVerifier, credential: str
) -> None:
    assert not verifier.owns(credential)
    error = await rejected(verifier.verify(credential), credential)
    assert error.code == "invalid_token"


@pytest.mark.parametrize("payload", ["bm90IGpzb24", b64json(["a", "list"]), b64json("text"), "%%%"])
async def test_a_payload_that_is_not_a_json_object_is_refused(
    verifier: JwtVerifier, payload: str
) -> None:
    token = f"{b64json({'alg': 'RS256', 'kid': 'rsa-1'})}.{payload}.c2ln"
    assert (await rejected(verifier.verify(token), token)).code == "invalid_token"


# --------------------------------------------------------------------------------------------
# Keys: unknown kid, rotation, caching, failure
# --------------------------------------------------------------------------------------------


async def test_an_unknown_kid_refetches_once_then_is_401(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    assert (await verifier.verify(rsa_key().sign(claims()))).tenant == "acme-tenant"
    assert jwks.fetches == 1
    clock.advance(31)  # past jwks_min_refresh (30 s), well before max-age (300 s)
    token = rsa_key("rsa-unknown").sign(claims())
    error = await rejected(verifier.verify(token), token, claims())
    assert error.code == "unknown_signing_key"
    assert jwks.fetches == 2
    clock.advance(29)  # still within jwks_min_refresh of that refetch
    other = rsa_key("rsa-other-unknown").sign(claims())
    assert (await rejected(verifier.verify(other), other)).code == "unknown_signing_key"
    assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
    assert jwks.fetches == 2
    assert (await verifier.verify(rsa_key().sign(claims()))).tenant == "acme-tenant"
    assert jwks.fetches == 2


async def test_an_unknown_kid_on_a_cold_cache_costs_one_fetch(
    verifier: JwtVerifier, jwks: JwksServer
) -> None:
    token = rsa_key("rsa-unknown").sign(claims())
    assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
    assert jwks.fetches == 1


async def test_without_a_refetch_interval_a_cold_unknown_kid_still_costs_one_fetch(
    make_verifier: MakeVerifier, jwks: JwksServer
) -> None:
    verifier = make_verifier(jwks_min_refresh=0)
    token = rsa_key("rsa-unknown").sign(claims())
    assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
    assert jwks.fetches == 1


async def test_key_rotation_is_picked_up_by_the_unknown_kid_refetch(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2", name="rotated")
    assert (await verifier.verify(old.sign(claims()))).tenant == "acme-tenant"
    jwks.publish(old.public_jwk(), new.public_jwk())
    clock.advance(31)
    assert (await verifier.verify(new.sign(claims()))).tenant == "acme-tenant"
    assert jwks.fetches == 2
    # The issuer withdraws the old key: once the cached set expires, it no longer verifies.
    jwks.publish(new.public_jwk())
    clock.advance(301)
    token = old.sign(claims())
    assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
    assert (await verifier.verify(new.sign(claims()))).tenant == "acme-tenant"


async def test_rotation_within_min_refresh_waits_for_the_interval(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    assert (await verifier.verify(rsa_key().sign(claims()))).tenant == "acme-tenant"
    new = rsa_key("rsa-2", name="rotated")
    jwks.publish(rsa_key().public_jwk(), new.public_jwk())
    clock.advance(5)
    token = new.sign(claims())
    assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
    clock.advance(30)
    assert (await verifier.verify(token)).tenant == "acme-tenant"
    assert jwks.fetches == 2


@pytest.mark.parametrize("min_refresh", [30.0, 0.0])
async def test_concurrent_unknown_kids_share_one_fetch(
    make_verifier: MakeVerifier, jwks: JwksServer, clock: FakeClock, min_refresh: float
) -> None:
    """No thundering herd, whether or not the refetch interval would also have stopped it."""
    verifier = make_verifier(jwks_min_refresh=min_refresh)
    assert (await verifier.verify(rsa_key().sign(claims()))).tenant == "acme-tenant"
    clock.advance(31)
    new = rsa_key("rsa-2", name="rotated")
    jwks.publish(rsa_key().public_jwk(), new.public_jwk())
    jwks.hold = asyncio.Event()
    tokens = [new.sign(claims(sub=f"user-{i}")) for i in range(25)]
    tasks = [asyncio.create_task(verifier.verify(token)) for token in tokens]
    await wait_for(lambda: jwks.waiting == 1, what="the refetch reached the server")
    assert not any(task.done() for task in tasks)
    jwks.hold.set()
    principals = await asyncio.gather(*tasks)
    assert {p.subject for p in principals} == {f"jwt:{ISSUER}:user-{i}" for i in range(25)}
    assert jwks.fetches == 2


async def test_concurrent_first_requests_share_the_initial_fetch(
    verifier: JwtVerifier, jwks: JwksServer
) -> None:
    jwks.hold = asyncio.Event()
    tasks = [asyncio.create_task(verifier.verify(ec_key().sign(claims()))) for _ in range(10)]
    await wait_for(lambda: jwks.waiting == 1, what="the first fetch reached the server")
    jwks.hold.set()
    assert all(p.tenant == "acme-tenant" for p in await asyncio.gather(*tasks))
    assert jwks.fetches == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    verifier: JwtVerifier, jwks: JwksServer
) -> None:
    jwks.hold = asyncio.Event()
    first = asyncio.create_task(verifier.verify(rsa_key().sign(claims())))
    second = asyncio.create_task(verifier.verify(rsa_key().sign(claims())))
    await wait_for(lambda: jwks.waiting == 1, what="the fetch reached the server")
    first.cancel()
    jwks.hold.set()
    assert (await second).tenant == "acme-tenant"
    assert first.cancelled()
    assert jwks.fetches == 1


async def test_max_age_is_honoured(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    jwks.cache_control = "public, max-age=120"
    token = rsa_key().sign(claims())
    await verifier.verify(token)
    clock.advance(119)
    await verifier.verify(token)
    assert jwks.fetches == 1
    clock.advance(2)
    await verifier.verify(token)
    assert jwks.fetches == 2


async def test_without_max_age_the_default_applies(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    token = rsa_key().sign(claims())
    await verifier.verify(token)
    clock.advance(299)
    await verifier.verify(token)
    assert jwks.fetches == 1
    clock.advance(2)
    await verifier.verify(token)
    assert jwks.fetches == 2


async def test_no_store_refetches_after_the_minimum_interval(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    jwks.cache_control = "no-store"
    token = rsa_key().sign(claims())
    await verifier.verify(token)
    clock.advance(29)
    await verifier.verify(token)
    assert jwks.fetches == 1
    clock.advance(2)
    await verifier.verify(token)
    assert jwks.fetches == 2


async def test_cached_keys_survive_the_jwks_server_going_down(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    token = ed_key().sign(claims())
    await verifier.verify(token)
    jwks.status = 503
    clock.advance(301)
    assert (await verifier.verify(token)).tenant == "acme-tenant"
    assert jwks.fetches == 2
    await jwks.stop()
    clock.advance(31)
    assert (await verifier.verify(token)).tenant == "acme-tenant"
    unknown = ed_key("ed-unknown").sign(claims())
    clock.advance(31)
    assert (await rejected(verifier.verify(unknown), unknown)).code == "unknown_signing_key"


async def test_with_the_server_down_and_no_keys_every_token_is_401(
    verifier: JwtVerifier, jwks: JwksServer, clock: FakeClock
) -> None:
    await jwks.stop()
    token = rsa_key().sign(claims())
    for _ in range(2):
        assert (await rejected(verifier.verify(token), token)).code == "unknown_signing_key"
        clock.advance(31)


async def test_prefetch_loads_every_issuer(verifier: JwtVerifier, jwks: JwksServer) -> None:
    await verifier.prefetch()
    assert jwks.fetches == 1
    assert verifier.cache(ISSUER).kids == {"rsa-1", "ec-1", "ed-1"}
    await verifier.verify(rsa_key().sign(claims()))
    assert jwks.fetches == 1


# --------------------------------------------------------------------------------------------
# Fuzzing: whatever arrives, the answer is a clean 401
# --------------------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none", "HS256"]) | _JSON},
    optional={"kid": st.sampled_from(["rsa-1", "ec-1", ""]) | _JSON, "typ": _JSON, "crit": _JSON},
)
_PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([ISSUER, OTHER_ISSUER]) | _JSON,
        "aud": st.just(AUDIENCE) | _JSON,
        "exp": st.integers() | _JSON,
        "tenant": _JSON,
        "scope": _JSON,
    },
)


def _verify_offline(token: str) -> ApiError:
    """Verify against an issuer whose JWKS URL refuses connections; return the refusal."""

    async def run() -> ApiError:
        config = JwtIssuer(
            issuer=ISSUER, jwks_url="http://127.0.0.1:9/jwks.json", audience=AUDIENCE
        )
        verifier = JwtVerifier([config], tenant_known=KNOWN_TENANTS.__contains__)
        try:
            verifier.owns(token)
            with pytest.raises(ApiError) as info:
                await verifier.verify(token)
            return info.value
        finally:
            await verifier.close()

    return asyncio.run(run())


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200) | st.from_regex(r"[A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_-]{0,40}){2}"))
def test_arbitrary_credentials_are_refused_cleanly(credential: str) -> None:
    error = _verify_offline(credential)
    assert error.status == 401


@settings(max_examples=150, deadline=None)
@given(_HEADERS, _PAYLOADS, st.binary(max_size=80))
def test_arbitrary_unsigned_tokens_are_refused_cleanly(
    header: dict[str, Any], payload: dict[str, Any], signature: bytes
) -> None:
    token = f"{b64json(header)}.{b64json(payload)}.{b64url(signature)}"
    error = _verify_offline(token)
    assert error.status == 401
    assert_leaks_nothing(error, token)
