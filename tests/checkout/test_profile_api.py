"""GET and PATCH /api/v1/members/{member_number}."""

from datetime import date

import pytest
from django.forms.models import model_to_dict

from club.models import Tier
from loyalty.models import PointsAccount
from members.models import Member
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db


def url(member):
    return f"/api/v1/members/{member.member_number}"


def snapshot(member):
    """Everything the database holds about the member and its points."""
    row = model_to_dict(Member.objects.get(pk=member.pk))
    row["updated_at"] = None
    account = PointsAccount.objects.filter(member_id=member.pk).values("balance", "pending").get()
    cards = sorted(member.cards.values_list("number", "status"))
    return row, account, cards


@pytest.fixture
def lena(make_member):
    return make_member(
        market="SE",
        points=250,
        email="lena@example.se",
        phone="+46701230001",
        first_name="Lena",
        last_name="Ek",
        birth_date=date(1985, 3, 4),
        consents={"marketing_email": True},
    )


def test_get_answers_the_member_object(api, lena):
    response = api.get(url(lena))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["member_number"] == lena.member_number
    assert body["cards"] == [lena.cards.get().number]
    assert body["status"] == "active" and body["market"] == "SE"
    assert body["first_name"] == "Lena" and body["last_name"] == "Ek"
    assert body["email"] == "lena@example.se" and body["phone"] == "+46701230001"
    assert body["birth_date"] == "1985-03-04"
    assert body["language"] == "sv" and body["channel"] == "store"
    assert body["consents"] == {"marketing_email": True, "marketing_sms": False, "profiling": False}
    assert body["tier"] == {"code": "member", "name": "Medlem", "valid_until": None}
    assert body["points"]["balance"] == 250 and body["points"]["pending"] == 0
    assert body["points"]["expiring"]["points"] == 250


def test_get_of_an_unknown_member_answers_not_found(api):
    assert_problem(api.get("/api/v1/members/1999999999"), 404, "not_found")


def test_get_of_a_member_of_another_market_answers_like_a_missing_one(make_api, lena):
    no_reader = make_api(scopes=["members:read"], markets=["NO"])
    missing = no_reader.get("/api/v1/members/1999999999")
    response = no_reader.get(url(lena))
    assert_problem(response, 404, "not_found")
    assert response.json() == missing.json()
    assert make_api(scopes=["members:read"], markets=["SE"]).get(url(lena)).status_code == 200


def test_get_needs_the_members_read_scope(make_api, lena):
    assert_problem(make_api(scopes=["members:write"]).get(url(lena)), 403, "permission_denied")


def test_patch_changes_the_profile(api, lena):
    response = api.patch(
        url(lena),
        {
            "first_name": "Helena",
            "last_name": "Ekström",
            "email": "Helena.Ekstrom@Example.se",
            "phone": "070-123 00 02",
            "birth_date": "1985-03-05",
            "language": "en",
            "consents": {"marketing_sms": True, "marketing_email": False},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["first_name"] == "Helena" and body["last_name"] == "Ekström"
    assert body["email"] == "Helena.Ekstrom@Example.se"
    assert body["phone"] == "+46701230002"
    assert body["birth_date"] == "1985-03-05"
    assert body["language"] == "en"
    assert body["consents"] == {"marketing_email": False, "marketing_sms": True, "profiling": False}
    assert body["points"]["balance"] == 250

    row = Member.objects.get(pk=lena.pk)
    assert (row.first_name, row.last_name, row.email, row.phone, row.birth_date, row.language) == (
        "Helena",
        "Ekström",
        "Helena.Ekstrom@Example.se",
        "+46701230002",
        date(1985, 3, 5),
        "en",
    )
    assert (row.marketing_email, row.marketing_sms, row.profiling) == (False, True, False)
    assert row.consents_updated_at is not None
    assert api.get(url(lena)).json() == body


def test_patch_of_one_field_leaves_the_others(api, lena):
    body = api.patch(url(lena), {"first_name": "Magdalena"}, format="json").json()
    assert body["first_name"] == "Magdalena"
    assert body["last_name"] == "Ek" and body["email"] == "lena@example.se"
    assert body["consents"]["marketing_email"] is True


def test_patch_may_clear_the_email_when_a_phone_remains(api, lena):
    body = api.patch(url(lena), {"email": None}, format="json").json()
    assert body["email"] is None and body["phone"] == "+46701230001"
    assert Member.objects.get(pk=lena.pk).email is None


def test_patch_may_clear_the_birth_date(api, lena):
    assert api.patch(url(lena), {"birth_date": None}, format="json").json()["birth_date"] is None


def test_patch_removing_both_email_and_phone_answers_validation_error(api, lena):
    before = snapshot(lena)
    assert_problem(
        api.patch(url(lena), {"email": None, "phone": ""}, format="json"), 400, "validation_error"
    )
    assert snapshot(lena) == before


@pytest.mark.parametrize(
    "forbidden",
    [
        {"balance": 100000},
        {"points": {"balance": 100000}},
        {"tier": "gold"},
        {"tier": {"code": "gold"}},
        {"status": "closed"},
        {"market": "NO"},
        {"member_number": "1000000017"},
        {"cards": ["9752000000000000"]},
        {"enrolled_at": "2020-01-01T00:00:00+00:00"},
        {"channel": "online"},
        {"id": 1},
        {"favourite_colour": "blue"},
    ],
)
def test_patch_with_a_field_that_may_not_change_answers_validation_error_and_changes_nothing(
    api, lena, forbidden
):
    before = snapshot(lena)
    body = {"first_name": "Changed", **forbidden}
    problem = assert_problem(api.patch(url(lena), body, format="json"), 400, "validation_error")
    assert set(forbidden) <= set(problem["errors"])
    assert snapshot(lena) == before
    assert Member.objects.get(pk=lena.pk).first_name == "Lena"


@pytest.mark.parametrize(
    "bad",
    [
        {"email": "not-an-email"},
        {"phone": "123"},
        {"birth_date": "3000-01-01"},
        {"birth_date": "1800-01-01"},
        {"consents": {"marketing_email": "sometimes"}},
        {"consents": {"newsletter": True}},
        {"consents": None},
        {"language": "x" * 9},
        {"first_name": None},
    ],
)
def test_patch_with_an_invalid_value_answers_validation_error_and_changes_nothing(api, lena, bad):
    before = snapshot(lena)
    assert_problem(api.patch(url(lena), bad, format="json"), 400, "validation_error")
    assert snapshot(lena) == before


def test_patch_with_a_json_array_answers_validation_error(api, lena):
    before = snapshot(lena)
    assert_problem(
        api.patch(url(lena), [{"first_name": "X"}], format="json"), 400, "validation_error"
    )
    assert snapshot(lena) == before


def test_patch_to_the_email_of_another_member_answers_member_exists(api, lena, make_member):
    other = make_member(email="other.one@example.se", phone="+46701230003")
    before = snapshot(lena)
    problem = assert_problem(
        api.patch(url(lena), {"email": "OTHER.ONE@example.se"}, format="json"), 409, "member_exists"
    )
    assert other.member_number in problem["detail"]
    assert snapshot(lena) == before


def test_patch_to_the_phone_of_another_member_answers_member_exists(api, lena, make_member):
    other = make_member(email="other.two@example.se", phone="+46701230004")
    before = snapshot(lena)
    problem = assert_problem(
        api.patch(url(lena), {"phone": "0701230004", "first_name": "X"}, format="json"),
        409,
        "member_exists",
    )
    assert other.member_number in problem["detail"]
    assert snapshot(lena) == before


def test_patch_to_own_email_in_other_case_is_no_conflict(api, lena):
    response = api.patch(url(lena), {"email": "LENA@example.se"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "LENA@example.se"


def test_patch_of_a_member_of_another_market_answers_not_found_and_changes_nothing(make_api, lena):
    before = snapshot(lena)
    dk_writer = make_api(scopes=["members:write"], markets=["DK"])
    assert_problem(
        dk_writer.patch(url(lena), {"first_name": "Hacked"}, format="json"), 404, "not_found"
    )
    assert snapshot(lena) == before


def test_patch_needs_the_members_write_scope(make_api, lena):
    before = snapshot(lena)
    reader = make_api(scopes=["members:read"])
    assert_problem(
        reader.patch(url(lena), {"first_name": "X"}, format="json"), 403, "permission_denied"
    )
    assert snapshot(lena) == before


def test_tier_cannot_be_raised_through_patch(api, lena):
    api.patch(url(lena), {"tier": "gold"}, format="json")
    assert Member.objects.get(pk=lena.pk).tier == Tier.objects.get(code="member")


def test_patch_conflict_does_not_name_a_member_the_key_may_not_see(make_api, lena):
    kari = Member.objects.get(email="kari.nord@example.no")
    se_writer = make_api(scopes=["members:write"], markets=["SE"])
    before = snapshot(lena)
    problem = assert_problem(
        se_writer.patch(url(lena), {"email": "kari.nord@example.no"}, format="json"),
        409,
        "member_exists",
    )
    assert kari.member_number not in problem["detail"]
    assert snapshot(lena) == before
