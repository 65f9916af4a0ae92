"""Static API keys: hashed at rest, mapped to tenants, clear 401s."""

from __future__ import annotations

import hashlib

import pytest

from fulcrum.api.errors import ApiError
from fulcrum.auth.base import presented_credential
from fulcrum.auth.static_keys import NoAuthentication, StaticKeyAuthenticator
from fulcrum.config import StaticKey

KEYS = [
    StaticKey(key="sk-acme-0123456789", tenant="acme"),
    StaticKey(key_sha256=hashlib.sha256(b"sk-globex-abcdef").hexdigest(), tenant="globex"),
]


@pytest.mark.parametrize(
    ("headers", "tenant"),
    [
        ({"Authorization": "Bearer sk-acme-0123456789"}, "acme"),
        ({"Authorization": "bearer   sk-acme-0123456789 "}, "acme"),
        ({"x-api-key": "sk-globex-abcdef"}, "globex"),
    ],
)
async def test_known_keys_map_to_their_tenant(headers: dict[str, str], tenant: str) -> None:
    assert (await StaticKeyAuthenticator(KEYS).authenticate(headers)).tenant == tenant


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
        ({"Authorization": "Bearer sk-wrong"}, "invalid_api_key"),
    ],
)
async def test_missing_or_unknown_keys_are_401(headers: dict[str, str], code: str) -> None:
    with pytest.raises(ApiError) as info:
        await StaticKeyAuthenticator(KEYS).authenticate(headers)
    assert info.value.status == 401
    assert info.value.code == code


def test_the_authenticator_keeps_no_clear_key() -> None:
    authenticator = StaticKeyAuthenticator(KEYS)
    assert b"sk-acme-0123456789" not in repr(vars(authenticator)).encode()


async def test_presented_credential_and_no_auth() -> None:
    assert presented_credential({"Authorization": "Bearer  k "}) == "k"
    assert presented_credential({}) is None
    assert (await NoAuthentication().authenticate({})).tenant == "default"
