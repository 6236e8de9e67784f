import pytest

pytestmark = pytest.mark.django_db


def test_enrol_answers_the_member_object_with_a_luhn_member_number(api):
    from members.numbers import luhn_valid

    response = api.post("/api/v1/members", {"market": "SE", "email": "Nils@Example.se",
                                            "phone": "070-123 45 99"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert luhn_valid(body["member_number"]) and len(body["member_number"]) == 10
    assert body["phone"] == "+46701234599"
    assert len(body["cards"]) == 1 and luhn_valid(body["cards"][0])
    assert body["tier"] == {"code": "member", "name": "Medlem", "valid_until": None}
    assert body["points"] == {"balance": 0, "pending": 0, "expiring": None}


def test_enrol_with_an_email_already_in_the_club_answers_member_exists(api):
    api.post("/api/v1/members", {"market": "SE", "email": "dup@example.se"}, format="json")
    response = api.post("/api/v1/members", {"market": "NO", "email": "DUP@example.se"}, format="json")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "member_exists"
