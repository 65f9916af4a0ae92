"""The JWKS cache: which keys survive parsing, how long they are kept, and failed fetches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from fulcrum.auth.jwks import (
    MAX_JWKS_BYTES,
    JwksCache,
    JwksError,
    cache_lifetime,
    key_matches,
    parse_jwks,
    redact_url,
)
from fulcrum.config import JwtIssuer
from tests.unit.auth.jwt_support import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    JwksServer,
    SigningKey,
    ec_key,
    ec_private,
    ed_key,
    oct_jwk,
    rsa_key,
    rsa_private,
    wait_for,
)

ALL = ("RS256", "ES256", "EdDSA")


def issuer(url: str = "http://127.0.0.1:9/jwks.json", **fields: Any) -> JwtIssuer:
    return JwtIssuer(issuer=ISSUER, jwks_url=url, audience=AUDIENCE, **fields)


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    server.publish(rsa_key().public_jwk(), ec_key().public_jwk())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_cache(jwks: JwksServer, clock: FakeClock) -> AsyncIterator[Callable[..., JwksCache]]:
    made: list[JwksCache] = []

    def make(**fields: Any) -> JwksCache:
        cache = JwksCache(issuer(jwks.url, **{"jwks_timeout": 2.0, **fields}), clock=clock)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.close()


# --------------------------------------------------------------------------------------------
# Cache lifetime
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300.0),
        ("", 300.0),
        ("public", 300.0),
        ("max-age=120", 120.0),
        ("public, max-age=3600, must-revalidate", 3600.0),
        ('MAX-AGE="90"', 90.0),
        ("s-maxage=10", 300.0),  # for shared caches, not for us
        ("max-age=0", 30.0),  # never below the minimum refresh interval
        ("max-age=5", 30.0),
        ("max-age=9999999", 86400.0),  # nor above a day
        ("no-store", 30.0),
        ("no-cache", 30.0),
        ("public, no-cache, max-age=600", 30.0),
        ('no-cache="Set-Cookie", max-age=600', 30.0),
        ("max-age=abc", 300.0),
    ],
)
def test_cache_lifetime(header: str | None, seconds: float) -> None:
    assert cache_lifetime(header, issuer()) == seconds


def test_cache_lifetime_respects_the_configured_floor_and_default() -> None:
    config = issuer(jwks_min_refresh=0, jwks_default_max_age=45)
    assert cache_lifetime(None, config) == 45
    assert cache_lifetime("max-age=0", config) == 0
    assert cache_lifetime("no-store", config) == 0


# --------------------------------------------------------------------------------------------
# Which keys are usable
# --------------------------------------------------------------------------------------------


def weak_rsa() -> SigningKey:
    return SigningKey("rsa-weak", "RS256", rsa_private("weak", 1024))


def p384() -> SigningKey:
    return SigningKey("ec-384", "ES256", ec_private("p384", "P-384"))


def test_public_signature_keys_of_each_family_are_kept() -> None:
    keys = parse_jwks(
        {"keys": [rsa_key().public_jwk(), ec_key().public_jwk(), ed_key().public_jwk()]}, ALL
    )
    assert set(keys) == {"rsa-1", "ec-1", "ed-1"}
    assert [key.algorithm_name for key in keys["ec-1"]] == ["ES256"]


def test_alg_and_use_may_be_omitted() -> None:
    bare = [
        rsa_key().public_jwk(alg=None, use=None),
        ec_key().public_jwk(alg=None),
        ed_key().public_jwk(use=None),
    ]
    keys = parse_jwks({"keys": bare}, ALL)
    assert {kid: found[0].algorithm_name for kid, found in keys.items()} == {
        "rsa-1": "RS256",
        "ec-1": "ES256",
        "ed-1": "EdDSA",
    }


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param(oct_jwk("k", b"s" * 32), id="oct"),
        pytest.param(oct_jwk("k", b"s" * 32, alg=None), id="oct-without-alg"),
        pytest.param(oct_jwk("k", b"s" * 32, alg="RS256"), id="oct-claiming-RS256"),
        pytest.param(rsa_key("k").public_jwk(use="enc"), id="encryption-key"),
        pytest.param(rsa_key("k").public_jwk(key_ops=["encrypt"]), id="key-ops-without-verify"),
        pytest.param(rsa_key("k").public_jwk(key_ops="verify"), id="key-ops-not-a-list"),
        pytest.param(rsa_key("k").public_jwk(alg="RS512"), id="alg-not-configured"),
        pytest.param(rsa_key("k").public_jwk(alg="HS256"), id="rsa-claiming-HS256"),
        pytest.param(rsa_key("k").public_jwk(alg="ES256"), id="rsa-claiming-ES256"),
        pytest.param(ec_key("k").public_jwk(alg="EdDSA"), id="ec-claiming-EdDSA"),
        pytest.param(rsa_key("k").public_jwk(alg=7), id="alg-not-a-string"),
        pytest.param(rsa_key("k").public_jwk(kid=None), id="no-kid"),
        pytest.param(rsa_key("k").public_jwk(kid=""), id="empty-kid"),
        pytest.param(rsa_key("k").public_jwk(kid=12), id="kid-not-a-string"),
        pytest.param(weak_rsa().public_jwk(kid="k"), id="rsa-1024"),
        pytest.param(p384().public_jwk(kid="k", alg=None), id="ec-p384"),
        pytest.param(p384().public_jwk(kid="k", alg="ES256"), id="ec-p384-claiming-ES256"),
        pytest.param({**rsa_key("k").public_jwk(), "n": "%%%"}, id="garbage-modulus"),
        pytest.param({"kty": "RSA", "kid": "k", "alg": "RS256"}, id="no-key-material"),
        pytest.param({"kid": "k", "alg": "RS256"}, id="no-kty"),
        pytest.param("not an object", id="string"),
    ],
)
def test_unusable_keys_are_dropped(jwk: Any) -> None:
    assert set(parse_jwks({"keys": [jwk, ed_key().public_jwk()]}, ALL)) == {"ed-1"}


def test_private_keys_are_never_kept() -> None:
    from jwt.algorithms import RSAAlgorithm

    private = RSAAlgorithm.to_jwk(rsa_private("issuer"), as_dict=True)
    private.update({"kid": "rsa-1", "alg": "RS256", "use": "sig"})
    assert parse_jwks({"keys": [private]}, ALL) == {}


def test_keys_outside_the_issuers_algorithms_are_dropped() -> None:
    jwks = {"keys": [rsa_key().public_jwk(), ec_key().public_jwk(), ed_key().public_jwk()]}
    assert set(parse_jwks(jwks, ("ES256",))) == {"ec-1"}
    assert set(parse_jwks({"keys": [rsa_key().public_jwk(alg=None)]}, ("EdDSA",))) == set()


def test_a_kid_shared_by_two_algorithms_keeps_both() -> None:
    jwks = {"keys": [rsa_key("shared").public_jwk(), ec_key("shared").public_jwk()]}
    keys = parse_jwks(jwks, ALL)
    assert sorted(key.algorithm_name for key in keys["shared"]) == ["ES256", "RS256"]


@pytest.mark.parametrize("document", [[], {}, {"keys": {}}, {"keys": "x"}, "keys", None])
def test_a_document_that_is_not_a_jwks_is_an_error(document: Any) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document, ALL)


def test_key_matches_checks_the_key_family() -> None:
    keys = parse_jwks(
        {"keys": [rsa_key().public_jwk(), ec_key().public_jwk(), ed_key().public_jwk()]}, ALL
    )
    rsa, ec, ed = keys["rsa-1"][0], keys["ec-1"][0], keys["ed-1"][0]
    assert key_matches("RS256", rsa) and not key_matches("RS256", ec)
    assert key_matches("ES256", ec) and not key_matches("ES256", ed)
    assert key_matches("EdDSA", ed) and not key_matches("EdDSA", rsa)
    assert not key_matches("HS256", rsa) and not key_matches("none", rsa)


def test_redact_url_drops_credentials_and_query() -> None:
    url = "https://user:secret@idp.example.test:8443/keys?token=abc#frag"
    assert redact_url(url) == "https://idp.example.test:8443/keys"


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


async def test_keys_are_fetched_on_first_use_and_cached(
    make_cache: Callable[..., JwksCache], jwks: JwksServer
) -> None:
    cache = make_cache()
    assert cache.kids == frozenset()
    assert [key.key_id for key in await cache.keys_for("rsa-1")] == ["rsa-1"]
    assert await cache.keys_for("ec-1")
    assert (jwks.fetches, cache.fetches) == (1, 1)
    assert cache.kids == {"rsa-1", "ec-1"}


async def test_a_failed_fetch_keeps_the_keys_and_logs_once(
    make_cache: Callable[..., JwksCache],
    jwks: JwksServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = make_cache()
    assert await cache.keys_for("rsa-1")
    caplog.set_level(logging.INFO, logger="fulcrum.auth.jwks")
    jwks.status = 500
    for _ in range(3):
        clock.advance(301)
        assert await cache.keys_for("rsa-1")
    assert jwks.fetches == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "HTTP 500" in warnings[0].getMessage()
    assert jwks.url.split("/jwks.json")[0] in warnings[0].getMessage()
    jwks.status = 200
    clock.advance(31)
    assert await cache.keys_for("rsa-1")
    assert any("succeeded again" in r.getMessage() for r in caplog.records)


async def test_after_a_failure_the_next_attempt_waits_the_minimum_interval(
    make_cache: Callable[..., JwksCache], jwks: JwksServer, clock: FakeClock
) -> None:
    cache = make_cache()
    jwks.status = 503
    assert await cache.keys_for("rsa-1") == ()
    clock.advance(10)
    assert await cache.keys_for("rsa-1") == ()
    assert jwks.fetches == 1
    jwks.status = 200
    clock.advance(21)
    assert await cache.keys_for("rsa-1")
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"no_keys": []}',
        b'{"keys": {"kid": "x"}}',
        b"[1, 2]",
        b" " * (MAX_JWKS_BYTES + 10),
    ],
    ids=["html", "no-keys", "keys-not-a-list", "array", "oversized"],
)
async def test_a_malformed_answer_keeps_the_keys(
    make_cache: Callable[..., JwksCache], jwks: JwksServer, clock: FakeClock, body: bytes
) -> None:
    cache = make_cache()
    assert await cache.keys_for("rsa-1")
    jwks.body = body
    clock.advance(301)
    assert await cache.keys_for("rsa-1")
    assert jwks.fetches == 2


async def test_a_valid_jwks_is_authoritative_even_when_it_withdraws_every_key(
    make_cache: Callable[..., JwksCache], jwks: JwksServer, clock: FakeClock
) -> None:
    cache = make_cache()
    assert await cache.keys_for("rsa-1")
    jwks.publish(oct_jwk("hmac", b"s" * 32))
    clock.advance(301)
    assert await cache.keys_for("rsa-1") == ()
    assert cache.kids == frozenset()


async def test_a_slow_server_times_out_and_keeps_the_keys(
    make_cache: Callable[..., JwksCache], jwks: JwksServer, clock: FakeClock
) -> None:
    cache = make_cache(jwks_timeout=0.2)
    assert await cache.keys_for("rsa-1")
    jwks.hold = asyncio.Event()  # never released before the timeout
    clock.advance(301)
    assert await cache.keys_for("rsa-1")
    assert jwks.fetches == 2


async def test_an_injected_session_is_used_and_left_open(
    jwks: JwksServer, clock: FakeClock
) -> None:
    async with aiohttp.ClientSession() as session:
        cache = JwksCache(issuer(jwks.url), session=session, clock=clock)
        assert await cache.keys_for("ec-1")
        await cache.close()
        assert not session.closed
        assert jwks.fetches == 1


async def test_close_cancels_a_fetch_in_flight_and_stops_fetching(
    make_cache: Callable[..., JwksCache], jwks: JwksServer
) -> None:
    cache = make_cache()
    jwks.hold = asyncio.Event()
    waiter = asyncio.create_task(cache.keys_for("rsa-1"))
    await wait_for(lambda: jwks.waiting == 1, what="the fetch reached the server")
    await cache.close()
    assert await waiter == ()
    await cache.refresh()
    assert await cache.keys_for("rsa-1") == ()
    assert jwks.fetches == 1
