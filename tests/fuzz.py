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
    """A member with 5,000 points, a voucher, a held redemption and a
    webhook, each made through the API as an integrator would."""
    member = make_member(market="SE", points=5000, email=f"fuzz-{uuid.uuid4().hex[:8]}@example.se")
    number = member.member_number
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
