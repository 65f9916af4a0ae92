"""Redaction tables: real-looking valid items are masked, look-alikes with bad checksums are not.

Valid CPF, CNPJ and card numbers are generated here by computing their check digits in the
test (independently of the code under test), from fixed seeds so failures reproduce.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from fulcrum.config import RedactConfig
from fulcrum.telemetry.audit.redact import (
    CARD_MASK,
    CNPJ_MASK,
    CPF_MASK,
    EMAIL_MASK,
    PHONE_MASK,
    Redactor,
    cnpj_valid,
    cpf_valid,
    luhn_valid,
)

# -- generators with check digits computed here ------------------------------------------------


def cpf_check(base9: str) -> str:
    digits = [int(c) for c in base9]
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(digits[:length]))
        rest = (total * 10) % 11
        digits.append(0 if rest == 10 else rest)
    return "".join(map(str, digits))


def cnpj_check(base12: str) -> str:
    digits = [int(c) for c in base12]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        rest = sum(d * w for d, w in zip(digits, weights, strict=False)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    return "".join(map(str, digits))


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to ``prefix``."""
    for check in range(10):
        candidate = prefix + str(check)
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch)
            if i % 2:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def fmt_cpf(d: str) -> str:
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"


def fmt_cnpj(d: str) -> str:
    return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}"


def grouped(number: str, separator: str, *sizes: int) -> str:
    """``number`` split into groups of ``sizes`` (the rest is the last group)."""
    parts, start = [], 0
    for size in sizes:
        parts.append(number[start : start + size])
        start += size
    return separator.join([*parts, number[start:]])


def break_check(d: str) -> str:
    """Same number with its last check digit changed: must no longer validate."""
    return d[:-1] + str((int(d[-1]) + 1) % 10)


RNG = random.Random(20250501)
CPFS = [cpf_check("".join(RNG.choice("0123456789") for _ in range(9))) for _ in range(5)]
CNPJS = [cnpj_check("".join(RNG.choice("0123456789") for _ in range(8)) + "0001") for _ in range(5)]
VISA = luhn_complete("4" + "".join(RNG.choice("0123456789") for _ in range(14)))
MASTERCARD = luhn_complete("51" + "".join(RNG.choice("0123456789") for _ in range(13)))
AMEX = luhn_complete("37" + "".join(RNG.choice("0123456789") for _ in range(12)))
ELO_19 = luhn_complete("6363" + "".join(RNG.choice("0123456789") for _ in range(14)))

# -- the generators agree with known published examples (guards the generators themselves) ---


def test_generators_reproduce_published_examples() -> None:
    assert cpf_check("529982247") == "52998224725"  # the widely used CPF example
    assert cnpj_check("112223330001") == "11222333000181"  # the Receita's CNPJ example
    assert luhn_complete("411111111111111") == "4111111111111111"  # Visa test card
    assert luhn_complete("37828224631000") == "378282246310005"  # Amex test card


@pytest.mark.parametrize("digits", CPFS)
def test_cpf_validator(digits: str) -> None:
    assert cpf_valid(digits)
    assert not cpf_valid(break_check(digits))


@pytest.mark.parametrize("digits", CNPJS)
def test_cnpj_validator(digits: str) -> None:
    assert cnpj_valid(digits)
    assert not cnpj_valid(break_check(digits))


@pytest.mark.parametrize("digits", [VISA, MASTERCARD, AMEX, ELO_19])
def test_luhn_validator(digits: str) -> None:
    assert luhn_valid(digits)
    assert not luhn_valid(break_check(digits))


# -- masking tables -----------------------------------------------------------------------------

REDACTED: list[tuple[str, str, str]] = [
    # (case id, text, expected)
    ("email", "write to maria.silva@example.com.br today", f"write to {EMAIL_MASK} today"),
    ("email plus tag", "<joao+audit@sub.example.org>", f"<{EMAIL_MASK}>"),
    ("email unicode", "contato: joão@exemplo.com.br.", f"contato: {EMAIL_MASK}."),
    ("email twice", "a@b.io, c.d@e.co", f"{EMAIL_MASK}, {EMAIL_MASK}"),
    ("phone E.164", "call +5511987654321 now", f"call {PHONE_MASK} now"),
    ("phone intl spaced", "tel +55 11 98765-4321.", f"tel {PHONE_MASK}."),
    ("phone US", "office +1 (415) 555-2671", f"office {PHONE_MASK}"),
    ("phone UK", "+44 20 7946 0958 (switchboard)", f"{PHONE_MASK} (switchboard)"),
    ("phone DE", "Tel.: +49 30 901820", f"Tel.: {PHONE_MASK}"),
    ("phone BR mobile parens", "celular (11) 98765-4321", f"celular {PHONE_MASK}"),
    ("phone BR landline parens", "fixo (21) 3456-7890", f"fixo {PHONE_MASK}"),
    ("phone BR spaced", "ligue 11 98765 4321", f"ligue {PHONE_MASK}"),
    ("phone BR dashed", "21-3456-7890", PHONE_MASK),
    ("phone BR bare mobile", "whats 11987654321", f"whats {PHONE_MASK}"),
    ("phone BR no area code", "ou 98765-4321", f"ou {PHONE_MASK}"),
    ("cpf formatted", f"CPF {fmt_cpf(CPFS[0])} ok", f"CPF {CPF_MASK} ok"),
    ("cpf bare", f"cpf:{CPFS[1]}", f"cpf:{CPF_MASK}"),
    ("cpf in json", f'{{"cpf": "{fmt_cpf(CPFS[2])}"}}', f'{{"cpf": "{CPF_MASK}"}}'),
    ("cnpj formatted", f"CNPJ {fmt_cnpj(CNPJS[0])}.", f"CNPJ {CNPJ_MASK}."),
    ("cnpj bare", f"empresa {CNPJS[1]}", f"empresa {CNPJ_MASK}"),
    ("card visa spaced", f"card {grouped(VISA, ' ', 4, 4, 4)}", f"card {CARD_MASK}"),
    ("card mastercard dashed", grouped(MASTERCARD, "-", 4, 4, 4), CARD_MASK),
    ("card amex 4-6-5", f"amex {grouped(AMEX, ' ', 4, 6)}", f"amex {CARD_MASK}"),
    ("card bare 19", f"elo={ELO_19}", f"elo={CARD_MASK}"),
    ("card test number", "4111111111111111", CARD_MASK),
    (
        "mixed",
        f"Sou {fmt_cpf(CPFS[3])}, e-mail ana@example.com, cartão {VISA}, tel (11) 91234-5678",
        f"Sou {CPF_MASK}, e-mail {EMAIL_MASK}, cartão {CARD_MASK}, tel {PHONE_MASK}",
    ),
]  # fmt: skip

KEPT: list[tuple[str, str]] = [
    ("cpf bad check digit", f"CPF {fmt_cpf(break_check(CPFS[0]))}"),
    ("cpf repeated digits", "111.111.111-11"),
    ("cnpj bad check digit", f"CNPJ {fmt_cnpj(break_check(CNPJS[0]))}"),
    ("card bad luhn spaced", grouped(break_check(VISA), " ", 4, 4, 4)),
    ("card bad luhn bare", break_check(MASTERCARD)),
    ("random 16 digits", "1234567812345678"),  # Luhn-invalid
    ("order id", "order 20250501123456789"),  # 17 digits, Luhn-invalid
    ("unix timestamp", "ts=1714557600"),  # area code 17 + subscriber starting with 1
    ("short number", "room 1234, floor 12"),
    ("no at sign", "user at example dot com"),
    ("version string", "v1.22.333"),
    ("amount", "R$ 1.234.567,89"),
    ("too short intl", "+1 234"),
    ("math", "2+3=5 and 10+20"),
    ("uuid", "550e8400-e29b-41d4-a716-446655440000"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in REDACTED], ids=[c[0] for c in REDACTED]
)
def test_masks(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize("text", [c[1] for c in KEPT], ids=[c[0] for c in KEPT])
def test_keeps_look_alikes(text: str) -> None:
    assert Redactor().redact(text) == text


SWITCHES: list[tuple[str, str]] = [
    ("email", "ana@example.com"),
    ("phone", "+55 11 98765-4321"),
    ("card", VISA),
    ("cpf", fmt_cpf(CPFS[4])),
    ("cnpj", fmt_cnpj(CNPJS[4])),
]


@pytest.mark.parametrize(("kind", "item"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_each_kind_can_be_switched_off(kind: str, item: str) -> None:
    everything = " | ".join(sample for _, sample in SWITCHES)
    redactor = Redactor.from_config(RedactConfig(**{kind: False}))
    out = redactor.redact(everything)
    assert item in out  # the switched-off kind is kept
    for other, sample in SWITCHES:
        if other != kind:
            assert sample not in out, other  # every other kind is still masked


def test_all_off_is_identity() -> None:
    redactor = Redactor(email=False, phone=False, card=False, cpf=False, cnpj=False)
    text = " ".join(sample for _, sample in SWITCHES)
    assert not redactor.enabled
    assert redactor.redact(text) == text


def test_redact_json_masks_strings_and_keeps_structure() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "user", "content": f"meu CPF é {CPFS[0]} e email x@y.com"},
            {"role": "user", "content": [{"type": "text", "text": f"cartão {VISA}"}]},
        ],
        "max_tokens": 12345678909,  # numbers are not strings: kept
        "ana@example.com": "key kept",
    }
    out = Redactor().redact_json(body)
    assert out["messages"][0]["content"] == f"meu CPF é {CPF_MASK} e email {EMAIL_MASK}"
    assert out["messages"][1]["content"][0]["text"] == f"cartão {CARD_MASK}"
    assert out["max_tokens"] == 12345678909
    assert out["ana@example.com"] == "key kept"
    assert body["messages"][0]["content"].startswith("meu CPF é " + CPFS[0])  # input unchanged


def test_long_inputs_stay_linear() -> None:
    """A large token without separators must not trigger quadratic backtracking."""
    import time

    text = ("a" * 200_000) + "@" + ("b" * 200_000) + " " + ("9" * 100_000)
    started = time.perf_counter()
    Redactor().redact(text)
    assert time.perf_counter() - started < 2.0
