"""The bare stack `make bench` measures the API against (issue 14's honest baseline).

    gunicorn bench.bare:application   (DATABASE_URL: the bench database)

A Django app at its barest, outside the project: no middleware, no DRF, no
installed apps, no ORM; per request one SQL statement through a psycopg 3
connection of the worker's own (autocommit: the statement is its own
durable transaction), and orjson. It serves the same cards and members as
the API, under the same gunicorn settings, on a port of its own:

  GET  /lookup?card=...  the lookup's JSON (member, tier, points, the next
                         expiry and the usable benefits) from one statement
  POST /write            a purchase body in; one statement touches the
                         member's account row and inserts a receipt row
                         (bench_receipt, made by bench/seed.py), committed

What the API costs above these is what its layers cost: authentication,
scopes, throttle, validation, services, the ledger's rows and checks.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import django
import orjson
import psycopg
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

# The lookup (checkout.selectors.member_lookup, by card, every market) and
# its usable benefits (rewards.selectors.usable_benefits: held by the tier,
# in the market, on a list when the benefit names lists; what is left of the
# allowance in the current period, counted in the market's time zone; none
# for a member who is not active; none used up) in one statement.
LOOKUP_SQL = """
SELECT m.member_number, m.status, mk.code, m.first_name, t.code, t.name, m.tier_valid_until,
       a.balance, a.pending,
       (SELECT MIN(l.expires_on) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0) AS next_on,
       (SELECT SUM(l.remaining) FROM loyalty_lot l
         WHERE l.member_id = m.id AND l.remaining > 0
           AND l.expires_on = (SELECT MIN(l2.expires_on) FROM loyalty_lot l2
                               WHERE l2.member_id = m.id AND l2.remaining > 0)) AS next_points,
       (SELECT COALESCE(json_agg(json_build_object('code', v.code, 'name', v.name,
                                                   'remaining', v.remaining)
                                 ORDER BY v.ordering, v.code), '[]')
        FROM (SELECT b.code, b.ordering,
                     CASE WHEN m.language = '' THEN b.name
                          ELSE COALESCE(NULLIF(b.names ->> m.language, ''),
                                        NULLIF(b.names ->> lower(split_part(m.language, '-', 1)), ''),
                                        b.name) END AS name,
                     CASE WHEN b.allowance IS NULL THEN NULL
                          ELSE GREATEST(b.allowance - COALESCE((
                            SELECT u.count FROM rewards_benefitusage u
                            WHERE u.member_id = m.id AND u.benefit_id = b.id
                              AND u.period_start = CASE b.period
                                WHEN 'day' THEN d.today
                                WHEN 'week' THEN d.today
                                  - ((extract(isodow FROM d.today)::int - 1
                                      - mk.first_day_of_week + 7) %% 7)
                                WHEN 'month' THEN date_trunc('month', d.today)::date
                                WHEN 'year' THEN date_trunc('year', d.today)::date
                                ELSE DATE '1970-01-01' END), 0), 0) END AS remaining
              FROM rewards_benefit b
              WHERE b.active AND m.status = 'active'
                AND EXISTS (SELECT 1 FROM rewards_benefit_tiers bt
                            WHERE bt.benefit_id = b.id AND bt.tier_id = m.tier_id)
                AND (NOT EXISTS (SELECT 1 FROM rewards_benefit_markets bm
                                 WHERE bm.benefit_id = b.id)
                     OR EXISTS (SELECT 1 FROM rewards_benefit_markets bm
                                WHERE bm.benefit_id = b.id AND bm.market_id = m.market_id))
                AND (NOT EXISTS (SELECT 1 FROM rewards_benefit_member_lists bl
                                 WHERE bl.benefit_id = b.id)
                     OR EXISTS (SELECT 1 FROM rewards_benefit_member_lists bl
                                JOIN rewards_memberlist_members ml
                                  ON ml.memberlist_id = bl.memberlist_id
                                WHERE bl.benefit_id = b.id AND ml.member_id = m.id))) v
        WHERE v.remaining IS DISTINCT FROM 0) AS benefits
FROM members_card c
JOIN members_member m ON m.id = c.member_id
JOIN club_market mk ON mk.id = m.market_id
JOIN club_tier t ON t.id = m.tier_id
JOIN loyalty_pointsaccount a ON a.member_id = m.id
CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE mk.time_zone)::date AS today) d
WHERE c.number = %s AND c.status = 'active' AND m.status <> 'erased'
LIMIT 2
"""

# The write: touch the member's account row (a row lock and a WAL record,
# like a booking) and insert one receipt row, in one statement.
WRITE_SQL = """
WITH account AS (
    UPDATE loyalty_pointsaccount a SET updated_at = now()
    FROM members_card c
    WHERE c.number = %(card)s AND c.status = 'active' AND a.member_id = c.member_id
    RETURNING a.member_id, a.balance, a.pending
), receipt AS (
    INSERT INTO bench_receipt (member_id, store_code, receipt_id, total, body, created_at)
    SELECT member_id, %(store)s, %(receipt)s, %(total)s, %(body)s, now() FROM account
    RETURNING id, member_id
)
SELECT r.id, a.balance, a.pending FROM receipt r JOIN account a USING (member_id)
"""

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("SECRET_KEY", "bench-bare"),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

_local = threading.local()


def _conn() -> psycopg.Connection:
    """The worker's connection, opened on its first request (after the fork)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
        conn.prepare_threshold = 0  # prepared once per connection, like a pooled app
    return conn


def _json(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def lookup(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _json({"detail": "Method not allowed."}, status=405)
    rows = _conn().execute(LOOKUP_SQL, [request.GET.get("card", "")]).fetchall()
    if len(rows) != 1:
        return _json({"detail": "No member matches."}, status=404 if not rows else 409)
    (
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
        benefits,
    ) = rows[0]
    expiring = None
    if next_on is not None and next_points:
        expiring = {"points": int(next_points), "on": next_on.isoformat()}
    return _json(
        {
            "member_number": number,
            "status": status,
            "market": market,
            "first_name": first_name,
            "tier": {
                "code": tier_code,
                "name": tier_name,
                "valid_until": valid_until.isoformat() if valid_until else None,
            },
            "points": {"balance": balance, "pending": pending, "expiring": expiring},
            "benefits": benefits,
        }
    )


def write(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _json({"detail": "Method not allowed."}, status=405)
    try:
        data = orjson.loads(request.body)
        params = {
            "card": data["member"]["card"],
            "store": data["store_code"],
            "receipt": data["receipt_id"],
            "total": data["total"],
            "body": request.body.decode(),
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return _json({"detail": "Malformed body."}, status=400)
    try:
        row = _conn().execute(WRITE_SQL, params).fetchone()
    except psycopg.errors.UniqueViolation:
        return _json({"detail": "Receipt already recorded."}, status=409)
    if row is None:
        return _json({"detail": "No member matches."}, status=404)
    receipt_pk, balance, pending = row
    return _json(
        {
            "id": receipt_pk,
            "receipt_id": params["receipt"],
            "points": {"balance": balance, "pending": pending},
        },
        status=201,
    )


urlpatterns = [path("lookup", lookup), path("write", write)]

from django.core.wsgi import get_wsgi_application  # noqa: E402 (after configure)

application = get_wsgi_application()
