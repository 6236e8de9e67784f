"""Vouchers over HTTP: the member's list, one voucher, its QR code, and
POST /api/v1/vouchers/{code}/redeem (once; again: 409 voucher_used)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import OutboxEvent
from members.models import Member
from rewards.codes import code_format
from rewards.models import Reward, Voucher
from rewards.services import voucher_issue
from tests.helpers import assert_problem, balance, claim, redeem

pytestmark = pytest.mark.django_db

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def voucher(api, make_member) -> dict:
    member = make_member(points=500)
    response = claim(api, member, "voucher-50")
    assert response.status_code == 201, response.content
    body = response.json()  # the voucher's fields, and the member after the claim
    assert body.pop("member")["member_number"] == member.member_number
    return body


def gift(member, code: str = "coffee-voucher") -> Voucher:
    return voucher_issue(member=member, reward=Reward.objects.get(code=code), source="gift")


def test_a_voucher_is_redeemed_once(api, voucher):
    response = redeem(api, voucher["code"], store="SE-002", receipt="R-77")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["code"] == voucher["code"]
    assert body["status"] == "redeemed"
    assert (body["store_code"], body["receipt_id"]) == ("SE-002", "R-77")
    assert body["value"] == {"amount": "50.00", "currency": "SEK"}
    assert body["redeemed_at"] is not None
    row = Voucher.objects.get(code=voucher["code"].replace("-", ""))
    assert (row.status, row.redeemed_store.code, row.redeemed_receipt_id) == (
        "redeemed",
        "SE-002",
        "R-77",
    )
    again = redeem(api, voucher["code"], store="SE-002", receipt="R-77")
    problem = assert_problem(again, 409, "voucher_used")
    assert "SE-002" in problem["detail"]
    assert_problem(
        redeem(api, voucher["code"], store="SE-001", receipt="R-78"), 409, "voucher_used"
    )
    row.refresh_from_db()
    assert row.redeemed_receipt_id == "R-77"
    assert OutboxEvent.objects.filter(topic="voucher.redeemed").count() == 1


@pytest.mark.parametrize(
    "typed", [str.lower, lambda c: c.replace("-", ""), lambda c: c.replace("-", "").lower()]
)
def test_the_code_is_read_in_any_case_with_or_without_dashes(api, voucher, typed):
    response = redeem(api, typed(voucher["code"]))
    assert response.status_code == 200, response.content
    assert response.json()["code"] == voucher["code"]


def test_a_redemption_replays_under_its_idempotency_key(api, voucher):
    first = redeem(api, voucher["code"], HTTP_IDEMPOTENCY_KEY="pos-9")
    again = redeem(api, voucher["code"], HTTP_IDEMPOTENCY_KEY="pos-9")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert_problem(redeem(api, voucher["code"], HTTP_IDEMPOTENCY_KEY="pos-10"), 409, "voucher_used")


def test_an_expired_voucher_is_not_valid(api, make_member):
    member = make_member()
    voucher = gift(member)
    Voucher.objects.filter(pk=voucher.pk).update(
        issued_at=timezone.now() - timedelta(days=31),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    body = assert_problem(redeem(api, voucher.code), 422, "voucher_not_valid")
    assert "expired" in body["detail"]
    voucher.refresh_from_db()
    assert voucher.status == "issued" and voucher.redeemed_at is None
    shown = api.get(f"/api/v1/vouchers/{voucher.code}").json()
    assert shown["status"] == "expired"  # before the job has marked it


@pytest.mark.parametrize("status", ["expired", "cancelled"])
def test_an_expired_or_cancelled_voucher_is_not_valid(api, make_member, status):
    voucher = gift(make_member())
    Voucher.objects.filter(pk=voucher.pk).update(status=status)
    assert_problem(redeem(api, voucher.code), 422, "voucher_not_valid")
    assert Voucher.objects.get(pk=voucher.pk).status == status


def test_a_store_of_another_market_is_unknown(api, voucher):
    assert_problem(redeem(api, voucher["code"], store="NO-001"), 422, "unknown_store")
    assert_problem(redeem(api, voucher["code"], store="NOPE"), 422, "unknown_store")
    assert Voucher.objects.get(code=voucher["code"].replace("-", "")).status == "issued"


def test_a_voucher_of_an_inactive_member_cannot_be_used(api, make_member):
    member = make_member()
    voucher = gift(member)
    Member.objects.filter(pk=member.pk).update(status=Member.Status.CLOSED)
    assert_problem(redeem(api, voucher.code), 422, "member_inactive")
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"


def test_a_voucher_of_an_erased_member_is_not_found(api, make_member):
    member = make_member()
    voucher = gift(member)
    Member.objects.filter(pk=member.pk).update(status=Member.Status.ERASED)
    assert_problem(redeem(api, voucher.code), 404, "not_found")
    assert_problem(api.get(f"/api/v1/vouchers/{voucher.code}/qr.png"), 404, "not_found")
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"


def test_a_voucher_of_another_market_is_not_found(make_api, make_member):
    norwegian = make_member(market="NO")
    voucher = gift(norwegian)
    swedish_pos = make_api(markets=["SE"])
    for response in (
        redeem(swedish_pos, voucher.code, store="NO-001"),
        swedish_pos.get(f"/api/v1/vouchers/{voucher.code}"),
        swedish_pos.get(f"/api/v1/vouchers/{voucher.code}/qr.png"),
        swedish_pos.get(f"/api/v1/vouchers/{voucher.code}/qr.svg"),
        swedish_pos.get(f"/api/v1/members/{norwegian.member_number}/vouchers"),
    ):
        assert_problem(response, 404, "not_found")
    assert Voucher.objects.get(pk=voucher.pk).status == "issued"
    norwegian_pos = make_api(markets=["NO"])
    assert redeem(norwegian_pos, voucher.code, store="NO-001").status_code == 200


@pytest.mark.parametrize("code", ["AAAA-AAAA-AAAAA", "not-a-code", "0000-0000-00000", "x" * 300])
def test_an_unknown_code_is_not_found(api, demo, code):
    assert_problem(redeem(api, code), 404, "not_found")
    assert_problem(api.get(f"/api/v1/vouchers/{code}"), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"store_code": "SE-001"},
        {"receipt_id": "R-1"},
        {"store_code": "SE-001", "receipt_id": "R-1", "points": 5},
        {"store_code": "SE-001", "receipt_id": "R" * 65},
    ],
)
def test_bad_redemption_bodies_are_validation_errors(api, voucher, body):
    response = api.post(f"/api/v1/vouchers/{voucher['code']}/redeem", body, format="json")
    assert_problem(response, 400, "validation_error")
    assert Voucher.objects.get(code=voucher["code"].replace("-", "")).status == "issued"


def test_redeeming_needs_rewards_write(make_api, voucher):
    reader = make_api(scopes=["members:read"])
    assert_problem(redeem(reader, voucher["code"]), 403, "permission_denied")
    assert Voucher.objects.get(code=voucher["code"].replace("-", "")).status == "issued"


def test_a_member_lists_their_vouchers_newest_first(api, make_member):
    member = make_member(points=1000)
    other = make_member(points=1000)
    gift(other)
    claimed = claim(api, member, "coffee-voucher").json()["code"]
    given = code_format(gift(member, "voucher-50").code)
    response = api.get(f"/api/v1/members/{member.member_number}/vouchers")
    assert response.status_code == 200
    body = response.json()
    assert [v["code"] for v in body["results"]] == [given, claimed]
    assert [v["source"] for v in body["results"]] == ["gift", "claim"]
    assert body["results"][1]["points_cost"] == 150
    assert body["next"] is None
    assert all(v["member_number"] == member.member_number for v in body["results"])


def test_the_voucher_list_pages(api, make_member):
    member = make_member()
    codes = [code_format(gift(member).code) for _ in range(5)][::-1]
    seen, url = [], f"/api/v1/members/{member.member_number}/vouchers?page_size=2"
    while url:
        body = api.get(url).json()
        assert len(body["results"]) <= 2
        seen += [v["code"] for v in body["results"]]
        url = body["next"]
    assert seen == codes
    assert_problem(
        api.get(f"/api/v1/members/{member.member_number}/vouchers?page_size=0"),
        400,
        "validation_error",
    )


def test_one_voucher_is_read_by_its_code(api, voucher):
    response = api.get(f"/api/v1/vouchers/{voucher['code'].lower()}")
    assert response.status_code == 200
    assert response.json()["code"] == voucher["code"]
    assert response.json()["status"] == "issued"


def test_the_qr_code_is_a_png(api, voucher):
    response = api.get(f"/api/v1/vouchers/{voucher['code']}/qr.png")
    assert response.status_code == 200, response.content[:200]
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_SIGNATURE)
    assert len(response.content) > 100


def test_the_qr_code_is_an_svg(api, voucher):
    import xml.etree.ElementTree as ET

    response = api.get(f"/api/v1/vouchers/{voucher['code']}/qr.svg")
    assert response.status_code == 200, response.content[:200]
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<?xml")
    root = ET.parse(io.BytesIO(response.content)).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_the_qr_code_encodes_the_code(api, voucher):
    import segno

    expected = io.BytesIO()
    segno.make(voucher["code"], error="m").save(
        expected, kind="svg", scale=8, border=4, xmldecl=True, svgns=True
    )
    response = api.get(f"/api/v1/vouchers/{voucher['code'].replace('-', '')}/qr.svg")
    assert response.content == expected.getvalue()


def test_an_image_is_served_to_a_client_that_asks_for_one(api, voucher):
    response = api.get(f"/api/v1/vouchers/{voucher['code']}/qr.png", HTTP_ACCEPT="image/png")
    assert response.status_code == 200
    assert response.content.startswith(PNG_SIGNATURE)
    response = api.get(f"/api/v1/vouchers/{voucher['code']}/qr.svg", HTTP_ACCEPT="image/*")
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"


def test_the_qr_code_needs_members_read(make_api, voucher):
    writer = make_api(scopes=["rewards:write"])
    assert_problem(
        writer.get(f"/api/v1/vouchers/{voucher['code']}/qr.png"), 403, "permission_denied"
    )
    assert_problem(
        make_api(scopes=[]).get(f"/api/v1/vouchers/{voucher['code']}/qr.svg"),
        403,
        "permission_denied",
    )


def test_redeeming_changes_no_points(api, make_member):
    member = make_member(points=650)
    code = claim(api, member, "voucher-50").json()["code"]
    assert redeem(api, code).status_code == 200
    assert balance(member) == 150
