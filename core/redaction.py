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

import functools
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

_V = "2-9A-HJ-NP-Z"  # the voucher codes' symbols (rewards/codes.py)
# One pass over the text: the first alternative that matches at a position
# wins, so a secret path is masked as a path before its segment is seen.
_SCRUB = re.compile(
    "|".join(
        [
            # Paths with secret segments, inside messages (a Django or Celery line).
            r"(?P<voucher_path>/api/v1/vouchers/)[^/\s\"'?]+",
            r"(?P<card_path>/api/v1/members/[^/\s\"'?]+/cards/)[^/\s\"'?]+",
            # API keys: lj_<8 hex>_<secret>; and whatever follows an auth scheme.
            r"(?P<key>\blj_[0-9a-f]{8}_[A-Za-z0-9_\-]+)",
            r"(?P<scheme>\b(?i:api-key|bearer|basic))\s+\S+",
            r"(?P<email>[^\s@\"'<>(),;:/=]+@[^\s@\"'<>(),;:/]+\.[A-Za-z]{2,})",
            # International phone numbers (the service stores E.164).
            r"(?P<phone>\+\d[\d \-().]{6,}\d)",
            # Card-like numbers: 12 to 19 digits (not a decimal's fraction,
            # such as a duration's), or four groups of four.
            r"(?P<number>(?<![\d.])\d{12,19}(?!\d)|(?<!\d)\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{4}(?!\d))",
            # Voucher codes, as shown (XXXX-XXXX-XXXXX) and as stored (13 symbols).
            rf"(?P<code>\b(?i:[{_V}]{{4}}-[{_V}]{{4}}-[{_V}]{{5}})\b|\b[{_V}]{{13}}\b)",
        ]
    )
)


def _scrubbed(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind in ("voucher_path", "card_path"):
        return match.group(kind) + MASK
    if kind == "scheme":
        return match.group("scheme") + " [key]"
    return f"[{kind}]"


def text_scrub(text: str) -> str:
    return _SCRUB.sub(_scrubbed, text)


@functools.lru_cache(maxsize=4096)
def _name_sensitive(key: str) -> bool:
    return key.lower().replace("-", "_") in SENSITIVE_KEYS


def _key_sensitive(key: Any) -> bool:
    return isinstance(key, str) and _name_sensitive(key)


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
