"""`manage.py create_api_key`, and the OpenAPI document and its docs page."""

import hashlib
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.models import SCOPES, ApiClient
from members.models import Member
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db


def create_key(*args):
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    lines = out.getvalue().rstrip("\n").split("\n")
    return lines, lines[-1]


def client_for(raw):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return api


def test_create_api_key_prints_the_key_alone_on_its_last_line_and_the_key_works(demo):
    lines, raw = create_key("--name", "POS Stockholm", "--scope", "members:read", "--market", "SE")
    assert re.fullmatch(r"\S{40,128}", raw), raw
    assert len(lines) >= 1
    client = ApiClient.objects.get(name="POS Stockholm")
    assert client.key_digest == hashlib.sha256(raw.encode()).hexdigest()
    assert client.scopes == ["members:read"]
    assert [m.code for m in client.markets.all()] == ["SE"]

    api = client_for(raw)
    anna = Member.objects.get(email="anna.berg@example.se")
    response = api.get("/api/v1/members/lookup", {"member_number": anna.member_number})
    assert response.status_code == 200
    assert response.json()["first_name"] == "Anna"
    # Bound to SE: a Norwegian member is not there; members:read only: no enrolment.
    kari = Member.objects.get(email="kari.nord@example.no")
    assert_problem(
        api.get("/api/v1/members/lookup", {"member_number": kari.member_number}), 404, "not_found"
    )
    assert_problem(
        api.post("/api/v1/members", {"market": "SE", "email": "k@example.se"}, format="json"),
        403,
        "permission_denied",
    )


def test_the_key_is_not_printed_anywhere_but_the_last_line(demo):
    lines, raw = create_key("--name", "CRM", "--scope", "members:read")
    assert all(raw not in line for line in lines[:-1])


def test_scope_all_grants_every_scope(demo):
    _, raw = create_key("--name", "Back office", "--scope", "all")
    assert sorted(ApiClient.objects.get(name="Back office").scopes) == sorted(SCOPES)
    api = client_for(raw)
    response = api.post(
        "/api/v1/members", {"market": "FI", "email": "all@example.fi"}, format="json"
    )
    assert response.status_code == 201, response.content
    number = response.json()["member_number"]
    assert api.get(f"/api/v1/members/{number}").status_code == 200


def test_several_scopes_and_markets_and_no_market_means_all(demo):
    _, raw = create_key(
        "--name",
        "Nordic",
        "--scope",
        "members:read",
        "--scope",
        "members:write",
        "--market",
        "SE",
        "--market",
        "NO",
    )
    client = ApiClient.objects.get(name="Nordic")
    assert sorted(client.scopes) == ["members:read", "members:write"]
    assert sorted(m.code for m in client.markets.all()) == ["NO", "SE"]

    _, raw_all = create_key("--name", "Everywhere", "--scope", "members:read")
    assert not ApiClient.objects.get(name="Everywhere").markets.exists()
    aino = Member.objects.get(email="aino.virtanen@example.fi")
    assert client_for(raw_all).get(f"/api/v1/members/{aino.member_number}").status_code == 200
    assert_problem(client_for(raw).get(f"/api/v1/members/{aino.member_number}"), 404, "not_found")


def test_an_unknown_scope_fails_and_creates_no_client(demo):
    with pytest.raises(CommandError, match="members:delete"):
        create_key("--name", "Bad", "--scope", "members:read", "--scope", "members:delete")
    assert not ApiClient.objects.filter(name="Bad").exists()


def test_an_unknown_market_fails_and_creates_no_client(demo):
    with pytest.raises(CommandError, match="XX"):
        create_key("--name", "Bad market", "--scope", "members:read", "--market", "XX")
    assert not ApiClient.objects.filter(name="Bad market").exists()


def test_the_name_is_required(demo):
    with pytest.raises(CommandError):
        create_key("--scope", "members:read")


def test_expires_days_and_rate_per_minute_are_stored(demo):
    create_key(
        "--name",
        "Short",
        "--scope",
        "members:read",
        "--expires-days",
        "7",
        "--rate-per-minute",
        "60",
    )
    client = ApiClient.objects.get(name="Short")
    assert client.rate_per_minute == 60 and client.expires_at is not None


def test_the_openapi_document_describes_the_paths(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content[:500]
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    for path in (
        "/api/v1/members",
        "/api/v1/members/lookup",
        "/api/v1/members/{member_number}",
        "/api/v1/members/{member_number}/cards",
        "/api/v1/members/{member_number}/cards/{card}",
    ):
        assert path in schema["paths"], sorted(schema["paths"])
    assert "post" in schema["paths"]["/api/v1/members"]
    assert {"get", "patch"} <= set(schema["paths"]["/api/v1/members/{member_number}"])
    lookup_params = {
        p["name"] for p in schema["paths"]["/api/v1/members/lookup"]["get"]["parameters"]
    }
    assert {"card", "member_number", "phone", "email"} <= lookup_params
    # The key scheme is documented, and the operations require it.
    schemes = schema["components"]["securitySchemes"]
    assert any(
        s["type"] == "apiKey" and s["in"] == "header" and s["name"] == "Authorization"
        for s in schemes.values()
    ), schemes
    assert schema["paths"]["/api/v1/members/lookup"]["get"]["security"]


def test_the_openapi_document_is_served_as_yaml_by_default(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert re.search(r"^openapi: 3\.", text, re.M)
    assert "/api/v1/members/lookup:" in text


def test_the_docs_page_uses_only_assets_of_the_service(db):
    client = APIClient()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I), html
    assert "http://" not in html and "https://" not in html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    scripts = [a for a in assets if a.split("?")[0].endswith(".js")]
    styles = [a for a in assets if a.split("?")[0].endswith(".css")]
    assert scripts and styles, assets
    for asset in scripts + styles:
        assert asset.startswith("/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        body = b"".join(served.streaming_content) if served.streaming else served.content
        assert len(body) > 1000, asset
    assert "/api/schema/" in html
