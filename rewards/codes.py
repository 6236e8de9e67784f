"""Voucher codes: unguessable, and easy to read out and type.

13 symbols from a 32-symbol alphabet without 0/O and 1/I: 65 bits from
`secrets`. Stored without dashes in upper case; shown as XXXX-XXXX-XXXXX.
Input is read case-insensitively, with or without dashes and spaces.
"""

from __future__ import annotations

import math
import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 13
GROUPS = (4, 4, 5)
BITS = LENGTH * math.log2(len(ALPHABET))  # 65.0

_ALLOWED = frozenset(ALPHABET)


def code_new() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def code_format(code: str) -> str:
    """XXXX-XXXX-XXXXX, for people to read and type."""
    parts, at = [], 0
    for size in GROUPS:
        parts.append(code[at : at + size])
        at += size
    return "-".join(part for part in parts if part)


def code_normalize(raw: str) -> str | None:
    """The stored form of what someone typed, or None if it cannot be a code."""
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    code = "".join(ch for ch in raw.upper() if ch not in "- ")
    if len(code) != LENGTH or not set(code) <= _ALLOWED:
        return None
    return code
