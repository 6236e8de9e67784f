"""The API's URLs plus two bare baselines for `make bench` (config.settings.bench only).

Each baseline is a plain Django view, no DRF: no authentication, scopes,
throttle, serializers or services. They cost what the same stack costs at
its barest, so the API's figures can be read as a share of them:

  GET  /bench/baseline/lookup?card=...  the lookup's member, read by card with
                                        one SQL query, answered in the same JSON
                                        (its benefits from the same selector the
                                        lookup calls: rewards.selectors.usable_benefits)
  POST /bench/baseline/write            a purchase body in; one UPDATE and one
                                        INSERT in a transaction (a durable commit)
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from config.urls import handler400, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as api_urlpatterns
from rewards.selectors import usable_benefits

# The member the lookup answers, with the same joins and the same expiring
# figure from the open lots; the card's own status and the erased filter too.
_READ_SQL = """
SELECT m.id, m.member_number, m.status, mk.code, m.first_name,
       t.code, t.name, m.tier_valid_until,
       a.balance, a.pending,
       (SELECT MIN(l.expires_on) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0) AS next_on,
       (SELECT SUM(l.remaining) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0
           AND l.expires_on = (SELECT MIN(l2.expires_on) FROM loyalty_lot l2
                               WHERE l2.member_id = m.id AND l2.remaining > 0)) AS next_points
FROM members_card c
JOIN members_member m ON m.id = c.member_id
JOIN club_market mk ON mk.id = m.market_id
JOIN club_tier t ON t.id = m.tier_id
JOIN loyalty_pointsaccount a ON a.member_id = m.id
WHERE c.number = %s AND c.status = 'active' AND m.status <> 'erased'
LIMIT 2
"""

# The write: touch the member's account row (a row lock and a WAL record,
# like a booking) and insert one row, in one transaction.
_UPDATE_SQL = """
UPDATE loyalty_pointsaccount a SET updated_at = now()
FROM members_card c
WHERE c.number = %s AND c.status = 'active' AND a.member_id = c.member_id
RETURNING a.member_id, a.balance, a.pending
"""
_INSERT_SQL = """
INSERT INTO bench_receipt (member_id, store_code, receipt_id, total, body, created_at)
VALUES (%s, %s, %s, %s, %s, now())
RETURNING id
"""


def _json(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


@require_GET
def baseline_lookup(request: HttpRequest) -> HttpResponse:
    card = request.GET.get("card", "")
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL, [card])
        rows = cursor.fetchall()
    if len(rows) != 1:
        return _json({"detail": "No member matches."}, status=404)
    (
        member_id,
        number,
        status,
        market,
        first_name,
        tier_code,
        tier_name,
        valid_until,
        balance,
        pending,
        next_on,
        next_points,
    ) = rows[0]
    expiring = None
    if next_on is not None and next_points:
        expiring = {"points": int(next_points), "on": _iso(next_on)}
    # The lookup reads a member's benefits through this selector (see
    # members.selectors.member_lookup); so does the baseline, to answer the
    # same JSON. Whatever it costs is the same on both sides.

    return _json(
        {
            "member_number": number,
            "status": status,
            "market": market,
            "first_name": first_name,
            "tier": {"code": tier_code, "name": tier_name, "valid_until": _iso(valid_until)},
            "points": {"balance": balance, "pending": pending, "expiring": expiring},
            "benefits": usable_benefits(member_id=member_id),
        }
    )


@csrf_exempt
@require_POST
def baseline_write(request: HttpRequest) -> HttpResponse:
    try:
        data = orjson.loads(request.body)
        card = data["member"]["card"]
        store_code, receipt_id, total = data["store_code"], data["receipt_id"], data["total"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _json({"detail": "Malformed body."}, status=400)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_UPDATE_SQL, [card])
                row = cursor.fetchone()
                if row is None:
                    return _json({"detail": "No member matches."}, status=404)
                member_id, balance, pending = row
                cursor.execute(
                    _INSERT_SQL, [member_id, store_code, receipt_id, total, request.body.decode()]
                )
                (receipt_pk,) = cursor.fetchone()
    except IntegrityError:
        return _json({"detail": "Receipt already recorded."}, status=409)
    return _json(
        {
            "id": receipt_pk,
            "receipt_id": receipt_id,
            "points": {"balance": balance, "pending": pending},
        },
        status=201,
    )


urlpatterns = [
    path("bench/baseline/lookup", baseline_lookup),
    path("bench/baseline/write", baseline_write),
    *api_urlpatterns,
]
