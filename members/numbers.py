"""Member and card numbers with a Luhn check digit."""

from __future__ import annotations

import secrets

MEMBER_NUMBER_BASE = 100_000_000  # nine digits before the check digit
CARD_PREFIX = "9752"
CARD_LENGTH = 16


def luhn_digit(payload: str) -> str:
    total = 0
    for index, char in enumerate(reversed(payload)):
        digit = int(char)
        if index % 2 == 0:  # these are doubled once the check digit is appended
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_digit(number[:-1]) == number[-1]


def member_number_for(sequence: int) -> str:
    payload = str(MEMBER_NUMBER_BASE + sequence)
    if len(payload) != 9:
        raise OverflowError("member number space exhausted")
    return payload + luhn_digit(payload)


def new_card_number() -> str:
    """Random, so that card numbers cannot be enumerated from one another."""
    body = CARD_PREFIX + "".join(str(secrets.randbelow(10)) for _ in range(CARD_LENGTH - 5))
    return body + luhn_digit(body)
