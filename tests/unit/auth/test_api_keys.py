"""API key format and hashing: unambiguous parsing, salted digests, constant-time checks."""

from __future__ import annotations

import hmac
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulcrum.auth import api_keys
from fulcrum.auth.api_keys import (
    KEY_ID_LENGTH,
    generate_key,
    hash_secret,
    looks_like_key,
    parse_key,
    secret_matches,
)

VALID_SECRET = "A" * 20 + "_-" + "z9" * 10 + "q"  # 43 characters, with '_' and '-'
VALID = f"fk_abcdef012345_{VALID_SECRET}"


def test_a_generated_key_has_the_documented_shape() -> None:
    new = generate_key()
    token = new.token
    assert token.startswith("fk_")
    assert len(new.key_id) == KEY_ID_LENGTH
    assert set(new.key_id) <= set(string.ascii_lowercase + string.digits)
    assert len(new.secret) == 43  # 32 random bytes, URL-safe base64
    assert len(new.salt) == 16
    assert token == f"fk_{new.key_id}_{new.secret}"


def test_a_generated_key_parses_back_into_its_parts_and_verifies() -> None:
    new = generate_key()
    presented = parse_key(new.token)
    assert presented is not None
    assert (presented.key_id, presented.secret) == (new.key_id, new.secret)
    assert secret_matches(presented.secret, new.salt, new.digest)


def test_a_secret_containing_underscores_still_parses_unambiguously() -> None:
    presented = parse_key(VALID)
    assert presented is not None
    assert presented.key_id == "abcdef012345"
    assert presented.secret == VALID_SECRET


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "fk_",
        "fk__" + VALID_SECRET,
        "fk_abcdef01234_" + VALID_SECRET,  # id one character short
        "fk_abcdef0123456_" + VALID_SECRET,  # id one character long
        "fk_ABCDEF012345_" + VALID_SECRET,  # upper-case id
        "fk_abcdef012345-" + VALID_SECRET,  # wrong separator
        "fk_abcdef012345_" + VALID_SECRET[:-1],  # secret too short
        "fk_abcdef012345_" + VALID_SECRET + "x",  # secret too long
        "fk_abcdef012345_" + VALID_SECRET[:-1] + "!",  # not base64url
        "FK_abcdef012345_" + VALID_SECRET,
        " " + VALID,
        VALID + "\n",
        "sk-abcdef012345_" + VALID_SECRET,
    ],
)
def test_malformed_keys_do_not_parse(credential: str) -> None:
    assert parse_key(credential) is None


@given(st.text(max_size=80))
def test_parsing_never_raises_and_accepts_only_the_exact_shape(text: str) -> None:
    presented = parse_key(text)
    if presented is not None:
        assert text == f"fk_{presented.key_id}_{presented.secret}"
        assert len(presented.key_id) == KEY_ID_LENGTH


def test_only_the_fk_prefix_claims_a_credential() -> None:
    assert looks_like_key(VALID)
    assert looks_like_key("fk_garbage")
    assert not looks_like_key("sk-fk_abc")
    assert not looks_like_key("eyJhbGciOiJSUzI1NiJ9.e30.sig")


def test_every_key_gets_its_own_salt_and_id() -> None:
    keys = [generate_key() for _ in range(200)]
    assert len({key.salt for key in keys}) == len(keys)
    assert len({key.key_id for key in keys}) == len(keys)
    assert len({key.secret for key in keys}) == len(keys)


def test_the_same_secret_under_two_salts_has_two_digests() -> None:
    assert hash_secret(b"salt-one", VALID_SECRET) != hash_secret(b"salt-two", VALID_SECRET)


def test_a_wrong_secret_or_salt_does_not_match() -> None:
    new = generate_key()
    other = generate_key()
    assert not secret_matches(other.secret, new.salt, new.digest)
    assert not secret_matches(new.secret, other.salt, new.digest)
    assert not secret_matches(new.secret[:-1] + ("A" if new.secret[-1] != "A" else "B"),
                              new.salt, new.digest)  # fmt: skip


def test_verification_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)  # what api_keys calls
    new = generate_key()
    assert secret_matches(new.secret, new.salt, new.digest)
    assert not secret_matches("x" * 43, new.salt, new.digest)
    assert len(calls) == 2
    assert all(stored == new.digest for _, stored in calls)


def test_no_repr_reveals_the_secret_salt_or_digest() -> None:
    new = generate_key()
    presented = parse_key(new.token)
    for text in (repr(new), str(new), repr(presented)):
        assert new.secret not in text
        assert new.salt.hex() not in text and repr(new.salt) not in text
        assert repr(new.digest) not in text
    assert new.key_id in repr(new)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("abcdef012345", True),
        ("abcdef01234", False),
        ("abcdef012345\n", False),
        ("ABCDEF012345", False),
    ],
)
def test_key_id_shape(text: str, valid: bool) -> None:
    assert api_keys.is_key_id(text) is valid
