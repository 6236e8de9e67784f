"""GET /api/v1/members/lookup: the checkout's "is this customer a member?"."""

from datetime import date

import pytest

from club.models import Market, Tier
from loyalty.models import PointsAccount
from members.models import Card, Member
from members.numbers import member_number_for
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/members/lookup"
LOOKUP_FIELDS = {"member_number", "status", "market", "first_name", "tier", "points", "benefits"}


def lookup(api, **params):
    return api.get(LOOKUP, params)


def legacy_member(*, market: str, **fields) -> Member:
    """A member as the migration from a national club left it: written by
    the ORM, past the enrolment's duplicate check."""
    member = Member.objects.create(
        market=Market.objects.get(code=market), tier=Tier.objects.get(code="member"), **fields
    )
    member.member_number = member_number_for(member.pk)
    member.save(update_fields=["member_number"])
    PointsAccount.objects.create(member=member)
    return member


@pytest.fixture
def reader(make_api):
    return make_api(scopes=["members:read"])


@pytest.fixture
def sven(make_member):
    return make_member(
        market="SE", points=300, email="Sven.Ek@Example.se", phone="+46731234567", first_name="Sven"
    )


def assert_is_sven(response, sven):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= LOOKUP_FIELDS
    assert body["member_number"] == sven.member_number
    assert body["status"] == "active"
    assert body["market"] == "SE"
    assert body["first_name"] == "Sven"
    assert body["tier"] == {"code": "member", "name": "Medlem", "valid_until": None}
    assert body["points"]["balance"] == 300
    assert body["points"]["pending"] == 0
    expiring = body["points"]["expiring"]
    assert expiring["points"] == 300 and date.fromisoformat(expiring["on"]) > date.today()
    assert isinstance(body["benefits"], list)
    for benefit in body["benefits"]:
        assert set(benefit) >= {"code", "name", "remaining"}
    # The lookup is not the full profile: no contact data on the hot path.
    assert "email" not in body and "phone" not in body
    return body


def test_lookup_by_card(reader, sven):
    card = sven.cards.get().number
    assert_is_sven(lookup(reader, card=card), sven)


def test_lookup_by_member_number(reader, sven):
    assert_is_sven(lookup(reader, member_number=sven.member_number), sven)


def test_lookup_by_phone_in_e164(reader, sven):
    assert_is_sven(lookup(reader, phone="+46731234567"), sven)


def test_lookup_by_phone_in_local_form_with_a_single_market_key(make_api, sven):
    se_reader = make_api(scopes=["members:read"], markets=["SE"])
    assert_is_sven(lookup(se_reader, phone="073-123 45 67"), sven)
    assert_is_sven(lookup(se_reader, phone="0731234567"), sven)


def test_lookup_by_local_phone_without_a_market_to_read_it_in_answers_validation_error(
    reader, sven
):
    # A key for every market cannot tell which country 073... belongs to.
    body = assert_problem(lookup(reader, phone="0731234567"), 400, "validation_error")
    assert "phone" in body["errors"]


def test_lookup_by_an_invalid_phone_answers_validation_error(reader, sven):
    assert_problem(lookup(reader, phone="not a phone"), 400, "validation_error")


def test_lookup_by_email_ignores_case(reader, sven):
    assert_is_sven(lookup(reader, email="sven.ek@example.se"), sven)
    assert_is_sven(lookup(reader, email="SVEN.EK@EXAMPLE.SE"), sven)


def test_lookup_of_a_demo_member_shows_its_points(reader):
    body = lookup(reader, email="erik.lind@example.se").json()
    assert body["first_name"] == "Erik"
    assert body["points"]["balance"] == 6400


def test_lookup_without_an_identifier_answers_validation_error(reader):
    body = assert_problem(reader.get(LOOKUP), 400, "validation_error")
    assert body["errors"]


def test_lookup_with_two_identifiers_answers_validation_error(reader, sven):
    assert_problem(
        lookup(reader, member_number=sven.member_number, email="sven.ek@example.se"),
        400,
        "validation_error",
    )


@pytest.mark.parametrize(
    "params",
    [
        {"card": ""},
        {"email": ""},
        {"colour": "blue"},
        {"email": "a" * 255},
    ],
)
def test_lookup_with_an_empty_unknown_or_oversized_identifier_answers_validation_error(
    reader, params
):
    assert_problem(lookup(reader, **params), 400, "validation_error")


def test_lookup_with_an_unknown_identifier_beside_a_known_one_answers_validation_error(
    reader, sven
):
    assert_problem(
        lookup(reader, member_number=sven.member_number, colour="blue"), 400, "validation_error"
    )


@pytest.mark.parametrize(
    "params",
    [
        {"card": "9752000000000000"},
        {"member_number": "1999999999"},
        {"phone": "+46709876543"},
        {"email": "nobody@example.se"},
        {"member_number": "abc"},
    ],
)
def test_lookup_of_no_member_answers_not_found(reader, sven, params):
    assert_problem(lookup(reader, **params), 404, "not_found")


def test_a_member_of_another_market_answers_exactly_like_a_missing_one(make_api, make_member):
    norwegian = make_member(market="NO", email="ola@example.no", phone="+4798765432")
    se_reader = make_api(scopes=["members:read"], markets=["SE"])
    missing = lookup(se_reader, email="nobody@example.no")
    assert_problem(missing, 404, "not_found")
    for params in (
        {"card": norwegian.cards.get().number},
        {"member_number": norwegian.member_number},
        {"email": "ola@example.no"},
        {"phone": "+4798765432"},
    ):
        response = lookup(se_reader, **params)
        assert_problem(response, 404, "not_found")
        assert response.json() == missing.json()
    no_reader = make_api(scopes=["members:read"], markets=["NO"])
    assert (
        lookup(no_reader, email="ola@example.no").json()["member_number"] == norwegian.member_number
    )


def test_a_key_bound_to_several_markets_sees_each_of_them(make_api, make_member):
    norwegian = make_member(market="NO", email="ola@example.no")
    finn = make_member(market="FI", email="aino2@example.fi")
    nordic = make_api(scopes=["members:read"], markets=["SE", "NO"])
    assert lookup(nordic, member_number=norwegian.member_number).status_code == 200
    assert_problem(lookup(nordic, member_number=finn.member_number), 404, "not_found")


def test_two_legacy_members_sharing_a_phone_answer_multiple_matches(reader, sven):
    legacy_member(market="SE", phone="+46731234567", first_name="Sven senior")
    body = assert_problem(lookup(reader, phone="+46731234567"), 409, "multiple_matches")
    assert "phone" in body["detail"]
    # Each is still found by its own number.
    assert_is_sven(lookup(reader, member_number=sven.member_number), sven)


def test_two_legacy_members_sharing_an_email_in_other_case_answer_multiple_matches(reader, sven):
    legacy_member(market="SE", email="SVEN.EK@example.se")
    assert_problem(lookup(reader, email="sven.ek@example.se"), 409, "multiple_matches")


def test_a_shared_phone_is_unique_within_the_markets_a_key_sees(make_api, sven):
    legacy_member(market="NO", phone="+46731234567")
    se_reader = make_api(scopes=["members:read"], markets=["SE"])
    assert_is_sven(lookup(se_reader, phone="+46731234567"), sven)


def test_an_erased_member_is_not_found(reader, sven):
    Member.objects.filter(pk=sven.pk).update(status=Member.Status.ERASED)
    assert_problem(lookup(reader, member_number=sven.member_number), 404, "not_found")
    assert_problem(lookup(reader, email="sven.ek@example.se"), 404, "not_found")


def test_a_suspended_member_is_found_with_its_status(reader, sven):
    Member.objects.filter(pk=sven.pk).update(status=Member.Status.SUSPENDED)
    body = lookup(reader, member_number=sven.member_number).json()
    assert body["status"] == "suspended"


def test_a_blocked_card_no_longer_finds_the_member(reader, sven):
    card = sven.cards.get()
    Card.objects.filter(pk=card.pk).update(status=Card.Status.BLOCKED)
    assert_problem(lookup(reader, card=card.number), 404, "not_found")
    assert_is_sven(lookup(reader, member_number=sven.member_number), sven)


def test_lookup_needs_the_members_read_scope(make_api, sven):
    writer = make_api(scopes=["members:write"])
    assert_problem(lookup(writer, member_number=sven.member_number), 403, "permission_denied")
