"""Masking of personal data in audited bodies: e-mail, phone, card, CPF and CNPJ (LGPD).

Numbers with a checksum are masked only when the checksum holds (Luhn for payment cards,
mod 11 for CPF and CNPJ), so order ids, timestamps and other digit runs survive. Phone
numbers have no checksum: they are recognised by shape — ``+`` and a country code with 8 to
15 digits in all, or a Brazilian number with a valid area code (DDD) and a subscriber number
that starts like a mobile (9) or a landline (2-5) — erring on the side of masking.

Passes run in a fixed order (e-mail, international phone, CNPJ, CPF, card, Brazilian phone)
so that the more specific, checksum-validated kinds win over the shape-only ones. Pure
functions; the redactor holds only which kinds are switched on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fulcrum.config import RedactConfig

EMAIL_MASK = "[REDACTED:EMAIL]"
PHONE_MASK = "[REDACTED:PHONE]"
CARD_MASK = "[REDACTED:CARD]"
CPF_MASK = "[REDACTED:CPF]"
CNPJ_MASK = "[REDACTED:CNPJ]"

# The look-behind pins the start to a token boundary: one attempt per token, no O(n²) scans.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,63}(?![\w-])"
)
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\w)")
_CNPJ = re.compile(r"(?<!\d)\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}(?!\d)")
_CPF = re.compile(r"(?<!\d)\d{3}\.?\d{3}\.?\d{3}-?\d{2}(?!\d)")
_CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_DDD = r"[1-9]{2}"
_SUBSCRIBER = r"(?:9\d{4}|[2-5]\d{3})[ .-]?\d{4}"
_BR_PHONE = re.compile(
    rf"""(?<![\w+])(?:
        \(\s?{_DDD}\s?\)\s?{_SUBSCRIBER}   # (11) 98765-4321, (21)3456-7890
      | {_DDD}[ .-]?{_SUBSCRIBER}          # 11 98765-4321, 21-3456-7890, 11987654321
      | 9\d{{4}}-\d{{4}}                   # 98765-4321 (mobile without area code)
    )(?!\w)""",
    re.VERBOSE,
)


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mod11_digit(digits: str, weights: list[int]) -> int:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def cpf_valid(digits: str) -> bool:
    """CPF: 11 digits, two mod-11 check digits; repeated digits (111.111.111-11) are invalid."""
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    first = _mod11_digit(digits[:9], list(range(10, 1, -1)))
    second = _mod11_digit(digits[:10], list(range(11, 1, -1)))
    return digits[9:] == f"{first}{second}"


_CNPJ_WEIGHTS = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]


def cnpj_valid(digits: str) -> bool:
    """CNPJ: 14 digits, two mod-11 check digits; repeated digits are invalid."""
    if len(digits) != 14 or len(set(digits)) == 1:
        return False
    first = _mod11_digit(digits[:12], _CNPJ_WEIGHTS[1:])
    second = _mod11_digit(digits[:13], _CNPJ_WEIGHTS)
    return digits[12:] == f"{first}{second}"


def _card_valid(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)


def _intl_phone_valid(digits: str) -> bool:
    return 8 <= len(digits) <= 15  # E.164: at most 15 digits with the country code


def _masker(mask: str, valid: Callable[[str], bool] | None) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if valid is None or valid(_digits(match.group())):
            return mask
        return match.group()

    return replace


@dataclass(frozen=True)
class _Pass:
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str]], str]
    needs: str  # "@" or "digit": skip the regex when the text cannot match


# (switch, pass), in the order they run.
_PASSES: tuple[tuple[str, _Pass], ...] = (
    ("email", _Pass(_EMAIL, _masker(EMAIL_MASK, None), "@")),
    ("phone", _Pass(_INTL_PHONE, _masker(PHONE_MASK, _intl_phone_valid), "digit")),
    ("cnpj", _Pass(_CNPJ, _masker(CNPJ_MASK, cnpj_valid), "digit")),
    ("cpf", _Pass(_CPF, _masker(CPF_MASK, cpf_valid), "digit")),
    ("card", _Pass(_CARD, _masker(CARD_MASK, _card_valid), "digit")),
    ("phone", _Pass(_BR_PHONE, _masker(PHONE_MASK, None), "digit")),
)
_HAS_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Redactor:
    """Masks the switched-on kinds of personal data in text and in JSON-like values."""

    email: bool = True
    phone: bool = True
    card: bool = True
    cpf: bool = True
    cnpj: bool = True

    @classmethod
    def from_config(cls, config: RedactConfig) -> Redactor:
        return cls(config.email, config.phone, config.card, config.cpf, config.cnpj)

    @property
    def enabled(self) -> bool:
        return self.email or self.phone or self.card or self.cpf or self.cnpj

    @cached_property
    def _passes(self) -> tuple[_Pass, ...]:
        return tuple(step for switch, step in _PASSES if getattr(self, switch))

    def redact(self, text: str) -> str:
        """``text`` with every recognised item of the switched-on kinds replaced by a mask."""
        has_at = "@" in text
        has_digit = _HAS_DIGIT.search(text) is not None
        for step in self._passes:
            if (step.needs == "@" and not has_at) or (step.needs == "digit" and not has_digit):
                continue
            text = step.pattern.sub(step.replace, text)
        return text

    def redact_json(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string redacted (keys are kept as they are).

        Numbers are left alone: a CPF sent as a JSON number is not recognised.
        """
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_json(item) for item in value]
        return value
