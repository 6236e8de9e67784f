"""POST /api/v1/members/{n}/cards issues a card; DELETE .../cards/{card} blocks one."""

import pytest

from members.models import Card
from members.numbers import luhn_valid
from tests.helpers import assert_problem, purchase_body

pytestmark = pytest.mark.django_db


def cards_url(member):
    return f"/api/v1/members/{member.member_number}/cards"


@pytest.fixture
def maja(make_member):
    return make_member(market="SE", points=700, email="maja@example.se")


def test_issue_a_new_card(api, maja):
    old = maja.cards.get().number
    response = api.post(cards_url(maja), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["number"] != old and luhn_valid(body["number"]) and len(body["number"]) == 16
    assert Card.objects.get(number=body["number"]).member_id == maja.pk
    assert api.get(f"/api/v1/members/{maja.member_number}").json()["cards"] == [old, body["number"]]
    found = api.get("/api/v1/members/lookup", {"card": body["number"]})
    assert found.status_code == 200 and found.json()["member_number"] == maja.member_number


def test_issue_with_an_empty_object_body_works(api, maja):
    assert api.post(cards_url(maja), {}, format="json").status_code == 201


def test_issue_with_a_body_field_answers_validation_error(api, maja):
    assert_problem(
        api.post(cards_url(maja), {"number": "9752000000000000"}, format="json"),
        400,
        "validation_error",
    )
    assert maja.cards.count() == 1


def test_issue_retried_with_the_same_idempotency_key_issues_one_card(api, maja):
    first = api.post(cards_url(maja), format="json", HTTP_IDEMPOTENCY_KEY="card-1")
    again = api.post(cards_url(maja), format="json", HTTP_IDEMPOTENCY_KEY="card-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert maja.cards.count() == 2


def test_issue_for_an_unknown_or_invisible_member_answers_not_found(make_api, maja):
    writer = make_api(scopes=["members:write"])
    assert_problem(writer.post("/api/v1/members/1999999999/cards", format="json"), 404, "not_found")
    fi_writer = make_api(scopes=["members:write"], markets=["FI"])
    assert_problem(fi_writer.post(cards_url(maja), format="json"), 404, "not_found")
    assert maja.cards.count() == 1


def test_issue_needs_the_members_write_scope(make_api, maja):
    reader = make_api(scopes=["members:read"])
    assert_problem(reader.post(cards_url(maja), format="json"), 403, "permission_denied")
    assert maja.cards.count() == 1


def test_block_a_lost_card_keeps_the_member_and_the_balance(api, maja):
    lost = maja.cards.get().number
    response = api.delete(f"{cards_url(maja)}/{lost}")
    assert response.status_code == 204, response.content
    assert response.content == b""
    card = Card.objects.get(number=lost)
    assert card.status == Card.Status.BLOCKED and card.blocked_at is not None

    assert_problem(api.get("/api/v1/members/lookup", {"card": lost}), 404, "not_found")
    by_number = api.get("/api/v1/members/lookup", {"member_number": maja.member_number}).json()
    assert by_number["points"]["balance"] == 700
    detail = api.get(f"/api/v1/members/{maja.member_number}").json()
    assert lost not in detail["cards"]
    assert detail["points"]["balance"] == 700


def test_a_blocked_card_cannot_pay_for_a_purchase(api, maja):
    lost = maja.cards.get().number
    api.delete(f"{cards_url(maja)}/{lost}")
    body = purchase_body(maja.member_number, "R-BLOCKED-1", "100.00")
    body["member"] = {"card": lost}
    assert_problem(api.post("/api/v1/purchases", body, format="json"), 404, "not_found")


def test_a_replacement_card_finds_the_member_with_its_balance(api, maja):
    lost = maja.cards.get().number
    new = api.post(cards_url(maja), format="json").json()["number"]
    api.delete(f"{cards_url(maja)}/{lost}")
    body = api.get("/api/v1/members/lookup", {"card": new}).json()
    assert body["member_number"] == maja.member_number and body["points"]["balance"] == 700


def test_blocking_twice_answers_204_again(api, maja):
    lost = maja.cards.get().number
    assert api.delete(f"{cards_url(maja)}/{lost}").status_code == 204
    assert api.delete(f"{cards_url(maja)}/{lost}").status_code == 204
    assert Card.objects.get(number=lost).status == Card.Status.BLOCKED


def test_block_an_unknown_card_answers_not_found(api, maja):
    assert_problem(api.delete(f"{cards_url(maja)}/9752000000000000"), 404, "not_found")
    assert maja.cards.get().status == Card.Status.ACTIVE


def test_block_the_card_of_another_member_answers_not_found(api, maja, make_member):
    other = make_member(email="other.card@example.se")
    theirs = other.cards.get().number
    assert_problem(api.delete(f"{cards_url(maja)}/{theirs}"), 404, "not_found")
    assert Card.objects.get(number=theirs).status == Card.Status.ACTIVE


def test_block_by_a_key_of_another_market_answers_not_found(make_api, maja):
    card = maja.cards.get().number
    no_writer = make_api(scopes=["members:write"], markets=["NO"])
    assert_problem(no_writer.delete(f"{cards_url(maja)}/{card}"), 404, "not_found")
    assert Card.objects.get(number=card).status == Card.Status.ACTIVE


def test_block_needs_the_members_write_scope(make_api, maja):
    card = maja.cards.get().number
    reader = make_api(scopes=["members:read"])
    assert_problem(reader.delete(f"{cards_url(maja)}/{card}"), 403, "permission_denied")
    assert Card.objects.get(number=card).status == Card.Status.ACTIVE
