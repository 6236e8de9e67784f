"""What the fuzz tests share: real identifiers to put in the paths, the
operations of the OpenAPI document, and a snapshot of what a refused call
must leave as it was."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from loyalty.models import LedgerEntry, Lot, LotMovement, PointsAccount
from members.models import Card, Member
from tests.contract import contract
from tests.helpers import purchase_body

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Seeded:
    """One member with points and every object a path can name."""

    member_number: str
    card: str
    benefit: str
    voucher: str
    redemption_id: str
    webhook_id: str

    def path(self, template: str) -> str:
        """The template with each parameter filled with a real identifier."""
        values = {
            "member_number": self.member_number,
            "card": self.card,
            "redemption_id": self.redemption_id,
            "webhook_id": self.webhook_id,
            # `code` is a benefit's under /benefits/, else a voucher's.
            "code": self.benefit if "/benefits/{code}" in template else self.voucher,
        }

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                raise KeyError(f"tests/fuzz.py knows no identifier for {{{name}}} in {template}")
            return values[name]

        return re.sub(r"\{([^}]+)\}", fill, template)


def seed(api: Any, make_member: Any) -> Seeded:
    """A member with 5,000 points, a purchase (R-FUZZ-0 at SE-001), a
    voucher, a held redemption and a webhook, each made through the API as
    an integrator would."""
    member = make_member(market="SE", points=5000, email=f"fuzz-{uuid.uuid4().hex[:8]}@example.se")
    number = member.member_number
    bought = api.post(
        "/api/v1/purchases",
        purchase_body(number, "R-FUZZ-0", "200.00"),
        format="json",
    )
    assert bought.status_code == 201, bought.content
    claimed = api.post(
        f"/api/v1/members/{number}/rewards",
        {"reward": "voucher-50"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert claimed.status_code == 201, claimed.content
    held = api.post(
        "/api/v1/redemptions",
        {
            "member": {"member_number": number},
            "points": 100,
            "store_code": "SE-001",
            "capture": False,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert held.status_code == 201, held.content
    hook = api.post(
        "/api/v1/webhooks",
        {"url": "https://crm.example/hooks", "events": ["*"]},
        format="json",
    )
    assert hook.status_code == 201, hook.content
    return Seeded(
        member_number=number,
        card=member.cards.get().number,
        benefit="coffee",
        voucher=claimed.json()["code"],
        redemption_id=held.json()["redemption_id"],
        webhook_id=str(hook.json()["id"]),
    )


def write_operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path template, operation) of every write the API documents:
    a route added to the URLs is in the document, and so in the fuzz."""
    found = []
    for template, item in contract().document["paths"].items():
        for method, spec in item.items():
            if method.upper() in WRITE_METHODS and template.startswith("/api/v1/"):
                found.append((method.upper(), template, spec))
    return sorted(found, key=lambda op: (op[1], op[0]))


def body_fields(spec: dict[str, Any]) -> list[str]:
    """The fields of an operation's JSON request body, per the document."""
    schema = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = schema.get("schema", {}).get("$ref", "")
    if not ref:
        return []
    component = contract().document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return sorted(component.get("properties", {}))


def snapshot() -> tuple[Any, ...]:
    """The ledger (entries, lots, movements, accounts) and the members and
    cards, as a refused call must leave them."""
    return (
        LedgerEntry.objects.count(),
        LotMovement.objects.count(),
        list(Lot.objects.order_by("id").values_list("id", "remaining", "matured")),
        list(
            PointsAccount.objects.order_by("member_id").values_list(
                "member_id", "balance", "pending", "closed_at"
            )
        ),
        list(Member.objects.order_by("id").values()),
        list(Card.objects.order_by("id").values_list("id", "number", "status")),
    )


def valid_bodies(seeded: Seeded) -> dict[tuple[str, str], dict[str, Any]]:
    """A body each write route accepts, by (method, template): the fuzz
    mutates one part of it, so that the rest passes and the mutated value
    reaches the code behind the serializer. A route missing here is fuzzed
    from an empty object."""
    from datetime import timedelta

    from django.utils import timezone

    member = {"member_number": seeded.member_number}
    when = (timezone.now() - timedelta(minutes=5)).isoformat()
    line = {"sku": "SKU-1", "category": "tools", "quantity": 1, "amount": "100.00"}
    return {
        ("POST", "/api/v1/events"): {
            "member": member,
            "type": "profile_completed",
            "occurred_at": when,
            "properties": {"source": "app", "fields": [1, 2]},
            "event_id": "fuzz-1",
        },
        ("POST", "/api/v1/members"): {
            "market": "SE",
            "email": "fuzz-new@example.se",
            "phone": "+46701234599",
            "first_name": "Fuzz",
            "last_name": "Berg",
            "birth_date": "1990-05-01",
            "language": "sv",
            "channel": "store",
            "store_code": "SE-001",
            "consents": {"marketing_email": True, "marketing_sms": False, "profiling": True},
        },
        ("PATCH", "/api/v1/members/{member_number}"): {
            "first_name": "Anna",
            "consents": {"marketing_sms": True},
        },
        ("POST", "/api/v1/members/{member_number}/adjustments"): {
            "points": 100,
            "reason": "goodwill",
        },
        ("POST", "/api/v1/members/{member_number}/benefits/{code}/use"): {"store_code": "SE-001"},
        ("POST", "/api/v1/members/{member_number}/rewards"): {"reward": "voucher-50"},
        ("POST", "/api/v1/purchases"): {
            "member": member,
            "store_code": "SE-001",
            "receipt_id": "R-FUZZ-1",
            "channel": "store",
            "occurred_at": when,
            "currency": "SEK",
            "total": "100.00",
            "lines": [line],
        },
        ("POST", "/api/v1/returns"): {
            "store_code": "SE-001",
            "receipt_id": "RET-FUZZ-1",
            "original": {"store_code": "SE-001", "receipt_id": "R-FUZZ-0"},
            "occurred_at": when,
            "currency": "SEK",
            "total": "50.00",
            "lines": [dict(line, amount="50.00")],
        },
        ("POST", "/api/v1/redemptions"): {
            "member": member,
            "points": 50,
            "store_code": "SE-001",
            "reference": "order-1",
            "capture": False,
        },
        ("POST", "/api/v1/vouchers/{code}/redeem"): {
            "store_code": "SE-001",
            "receipt_id": "R-FUZZ-2",
        },
        ("POST", "/api/v1/webhooks"): {
            "url": "https://crm.example/fuzz",
            "events": ["points.earned"],
            "description": "CRM",
        },
    }


def places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: the paths of its objects' keys and its
    arrays' items, at any depth (the root is `()`)."""
    found = [at]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += places(sub, (*at, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += places(sub, (*at, index))
    return found


def mutate(body: Any, at: tuple[Any, ...], how: str, junk: Any, key: str) -> Any:
    """A copy of `body` with the value at `at` replaced by `junk`, removed,
    or (an object) given one more field `key`."""
    import copy

    if not at:
        return junk if how == "replace" else body
    out = copy.deepcopy(body)
    parent = out
    for step in at[:-1]:
        parent = parent[step]
    last = at[-1]
    if how == "replace":
        parent[last] = junk
    elif how == "remove":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][key] = junk
    else:
        parent[last] = junk
    return out
