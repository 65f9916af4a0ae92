"""API keys made by ``fulcrum keys``: their format and how they are checked, as pure functions.

A key reads ``fk_<key_id>_<secret>``: ``key_id`` is 12 characters of ``[a-z0-9]`` (fixed
length, so parsing is unambiguous even though the secret may contain ``_``), public, and
used to find the record; ``secret`` is 32 random bytes from ``secrets`` in URL-safe base64
(43 characters). Only a per-key random salt and ``sha256(salt + secret)`` are stored.

Why a fast hash and not bcrypt/scrypt/argon2: slow hashes protect *low-entropy* secrets
(passwords) by making each guess expensive. A 256-bit random secret cannot be guessed at any
hashing speed, so slowing the hash buys no security; it would only add milliseconds of CPU to
every request on the hot path. The salt keeps equal secrets from having equal digests and
makes precomputed tables useless. Digests are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass, field

KEY_PREFIX = "fk_"
KEY_ID_LENGTH = 12
KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32  # 256 bits
SALT_BYTES = 16

_SECRET_LENGTH = 43  # len(base64url(32 bytes)) without padding
# Always used with fullmatch: ``$`` would also accept a trailing newline.
_KEY_PATTERN = re.compile(
    rf"{KEY_PREFIX}(?P<key_id>[a-z0-9]{{{KEY_ID_LENGTH}}})_"
    rf"(?P<secret>[A-Za-z0-9_-]{{{_SECRET_LENGTH}}})"
)
_KEY_ID_PATTERN = re.compile(rf"[a-z0-9]{{{KEY_ID_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A credential split into its public id and its secret (the secret is never in repr)."""

    key_id: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: the full key to hand out once, and what the store keeps."""

    key_id: str
    secret: str = field(repr=False)
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @property
    def token(self) -> str:
        """The key as the client sends it: ``fk_<key_id>_<secret>``."""
        return f"{KEY_PREFIX}{self.key_id}_{self.secret}"


def looks_like_key(credential: str) -> bool:
    """Whether the credential claims to be one of our keys (it may still be malformed)."""
    return credential.startswith(KEY_PREFIX)


def parse_key(credential: str) -> PresentedKey | None:
    """Split ``fk_<key_id>_<secret>``; None unless every part has exactly the right shape."""
    match = _KEY_PATTERN.fullmatch(credential)
    if match is None:
        return None
    return PresentedKey(match.group("key_id"), match.group("secret"))


def is_key_id(text: str) -> bool:
    """Whether ``text`` has the shape of a key id (12 characters of ``[a-z0-9]``)."""
    return _KEY_ID_PATTERN.fullmatch(text) is not None


def new_key_id() -> str:
    return "".join(secrets.choice(KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))


def hash_secret(salt: bytes, secret: str) -> bytes:
    """``sha256(salt + secret)``: what is stored and compared."""
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


def generate_key() -> NewKey:
    """A new random key with its own salt."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    salt = secrets.token_bytes(SALT_BYTES)
    return NewKey(new_key_id(), secret, salt, hash_secret(salt, secret))


def secret_matches(secret: str, salt: bytes, digest: bytes) -> bool:
    """Whether ``secret`` hashes to ``digest``, compared in constant time."""
    return hmac.compare_digest(hash_secret(salt, secret), digest)
