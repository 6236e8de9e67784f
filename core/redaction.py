"""What never reaches a log line: secrets in URL paths, personal data and keys.

Pure functions, no Django: gunicorn's access logger (config/gunicorn.py)
uses them before the application is loaded.

The rule for paths: a segment is masked when holding it is enough to use or
identify something without a key, or when it is personal data:

- a voucher's code (`/api/v1/vouchers/<code>...`): a bearer secret, whoever
  reads it can redeem the voucher;
- a card number (`/api/v1/members/<n>/cards/<card>`): the till identifies a
  member by it, and it is personal data.

Member numbers, redemption ids, webhook ids, benefit and reward codes stay:
each is an identifier that needs an API key seeing the member's market to be
of any use, and operators follow support cases by them. Query strings are
never logged at all (a lookup carries emails, phones and cards in them).

For log lines, `redact` drops the values of keys that name personal data or
secrets (email, phone, names, card, code, key, token, ...) anywhere in the
event, nested too, and masks what looks like an email, a phone number, a
card number, an API key or a voucher code in every string value, the
message included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

_SECRET_PATHS = (
    # /api/v1/vouchers/<code>, .../redeem, .../qr.png
    re.compile(r"^(/api/v1/vouchers/)[^/]+"),
    # /api/v1/members/<member_number>/cards/<card>
    re.compile(r"^(/api/v1/members/[^/]+/cards/)[^/]+"),
)


def path_mask(path: str) -> str:
    """The path with its secret segments replaced by ***."""
    for pattern in _SECRET_PATHS:
        path = pattern.sub(lambda m: m.group(1) + MASK, path, count=1)
    return path


# Keys whose values are never logged, compared in lower case with - as _.
SENSITIVE_KEYS = frozenset(
    {
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "birth_date",
        "birthday",
        "address",
        "street",
        "postal_code",
        "zip",
        "card",
        "card_number",
        "cards",
        "code",
        "voucher",
        "voucher_code",
        "key",
        "api_key",
        "raw_key",
        "authorization",
        "password",
        "secret",
        "token",
        "cookie",
        "sessionid",
        "csrftoken",
    }
)

_VOUCHER_SYMBOLS = "2-9A-HJ-NP-Z"
_SCRUBS = (
    # API keys: lj_<8 hex>_<secret>; and whatever follows an auth scheme.
    (re.compile(r"\blj_[0-9a-f]{8}_[A-Za-z0-9_\-]+"), "[key]"),
    (re.compile(r"(?i)\b(api-key|bearer|basic)\s+\S+"), r"\1 [key]"),
    (re.compile(r"[^\s@\"'<>(),;:/=]+@[^\s@\"'<>(),;:/]+\.[A-Za-z]{2,}"), "[email]"),
    # International phone numbers (the service stores E.164).
    (re.compile(r"\+\d[\d \-().]{6,}\d"), "[phone]"),
    # Card-like numbers: 12 to 19 digits (not a decimal's fraction, such as
    # a duration's), or four groups of four.
    (re.compile(r"(?<![\d.])\d{12,19}(?!\d)"), "[number]"),
    (re.compile(r"(?<!\d)\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}(?!\d)"), "[number]"),
    # Voucher codes, as shown (XXXX-XXXX-XXXXX) and as stored (13 symbols).
    (
        re.compile(
            rf"(?i)\b[{_VOUCHER_SYMBOLS}]{{4}}-[{_VOUCHER_SYMBOLS}]{{4}}-[{_VOUCHER_SYMBOLS}]{{5}}\b"
        ),
        "[code]",
    ),
    (re.compile(rf"\b[{_VOUCHER_SYMBOLS}]{{13}}\b"), "[code]"),
    # Paths with secret segments, inside messages (a Django or Celery line).
    (re.compile(r"(/api/v1/vouchers/)[^/\s\"']+"), r"\1" + MASK),
    (re.compile(r"(/api/v1/members/[^/\s\"']+/cards/)[^/\s\"']+"), r"\1" + MASK),
)


def text_scrub(text: str) -> str:
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    return text


def _key_sensitive(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SENSITIVE_KEYS


def value_redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return text_scrub(value)
    if depth > 5:
        return value
    if isinstance(value, Mapping):
        return {
            k: MASK if _key_sensitive(k) else value_redact(v, depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [value_redact(v, depth + 1) for v in value]
    return value


# Fields the service itself fills with what is never a secret (route is a
# URL pattern such as /api/v1/vouchers/<str:code>).
_NOT_SCRUBBED = frozenset({"timestamp", "level", "logger", "request_id", "route", "duration_ms"})


def redact(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: see the module's docstring."""
    for key, value in list(event_dict.items()):
        if _key_sensitive(key):
            event_dict[key] = MASK
        elif key not in _NOT_SCRUBBED:
            event_dict[key] = value_redact(value)
    return event_dict
