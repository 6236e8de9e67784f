"""Shared fixtures: the demo club, API clients with keys, members with points."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from backoffice.demo import demo_club_seed
from campaigns.services import campaigns_forget
from club.models import Tier
from core.auth import Client, forget_cached_clients
from core.services import api_client_create
from journeys.services import journey_forget
from loyalty.services import points_adjust
from members.selectors import normalize_phone
from rewards.selectors import catalogue_forget

# --- the response contract: make_api's clients check every answer (tests/contract.py)
from tests.contract import ContractClient
from tests.factories import MemberFactory
from tests.helpers import SYSTEM, set_tier


def pytest_report_header(config: Any) -> str:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    if engine != "postgresql":
        return (
            "!!! DATABASE: SQLite. PostgreSQL did not answer on 127.0.0.1:5432: "
            "the Postgres-only tests (concurrency, triggers) are SKIPPED. !!!"
        )
    return f"database: {engine} ({settings.DATABASES['default'].get('NAME')})"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL or start Postgres on 5432)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """In CI every test must run: a skip there is a failure."""
    if not os.environ.get("LOJAL_REQUIRE_ALL_TESTS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(
            f"LOJAL_REQUIRE_ALL_TESTS: {skipped} test(s) skipped; failing the run.", red=True
        )
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _fresh_client_cache() -> Iterator[None]:
    from club.selectors import forget_cached_markets, forget_cached_stores

    forget_cached_clients()
    forget_cached_stores()
    forget_cached_markets()
    yield
    forget_cached_clients()
    forget_cached_stores()
    forget_cached_markets()


@pytest.fixture(autouse=True)
def _locmem_cache_clear() -> Iterator[None]:
    from django.core.cache import cache

    from core.throttling import forget_failures
    from integrations.webhooks import forget_dispatch_failures

    cache.clear()
    # A test that took Redis away leaves no pause behind.
    forget_failures()
    forget_dispatch_failures()
    yield
    forget_failures()
    forget_dispatch_failures()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """The demo club (markets, stores, tiers, benefits, rewards, missions and
    a few members) is loaded once per test run, not once per test: each
    test's transaction is rolled back over it."""
    if not _on_test_database():
        return
    with django_db_blocker.unblock():
        demo_club_seed()


def _on_test_database() -> bool:
    """pytest-django sets up test databases only when a collected test asks
    for one: a run of database-free tests alone stays connected to the real
    database, which the fixtures here must then never touch."""
    from django.db import connection

    return connection.settings_dict["NAME"].startswith("test_") or (
        connection.vendor == "sqlite" and connection.is_in_memory_db()
    )


@pytest.fixture(autouse=True)
def _club_loaded(django_db_setup: Any, django_db_blocker: Any) -> None:
    """A test with real threads (transactional) empties the tables when it
    ends: the next test loads the club again, committed, before its own
    transaction begins."""
    if not _on_test_database():
        return
    with django_db_blocker.unblock():
        if not Tier.objects.exists():
            demo_club_seed()


@pytest.fixture
def demo(db: Any) -> None:
    """The demo club of the README, loaded once per run (django_db_setup)."""


ALL = ["all"]


@pytest.fixture
def make_api(demo: None) -> Callable[..., APIClient]:
    """An HTTP client holding a fresh key: make_api(scopes=[...], markets=[...])."""

    def make(
        scopes: list[str] | None = None, markets: list[str] | None = None, **kwargs: Any
    ) -> APIClient:
        client, raw = api_client_create(
            name="test client",
            scopes=scopes if scopes is not None else ALL,
            market_codes=markets,
            **kwargs,
        )
        api = ContractClient()  # an APIClient that checks answers against the OpenAPI document
        api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        api.api_client = client  # type: ignore[attr-defined]
        api.raw_key = raw  # type: ignore[attr-defined]
        return api

    return make


@pytest.fixture
def api(make_api: Callable[..., APIClient]) -> APIClient:
    return make_api()


@pytest.fixture
def system_client() -> Client:
    """A client that sees every market, for calling services directly."""
    return SYSTEM


@pytest.fixture
def make_member(demo: None) -> Callable[..., Any]:
    """make_member(market="SE", points=0, **fields): a member with a card and
    an empty account (tests/factories.py), with `points` available at once
    (a positive adjustment) if asked."""

    def make(market: str = "SE", points: int = 0, **fields: Any) -> Any:
        # As enrolment takes them: consents as one object, a phone in any form.
        fields.update({name: bool(v) for name, v in (fields.pop("consents", None) or {}).items()})
        if fields.get("phone"):
            fields["phone"] = normalize_phone(fields["phone"], region=market)
        member = MemberFactory(market_code=market, **fields)
        if points:
            points_adjust(actor=SYSTEM, member=member, points=points, reason="test setup")
        member.refresh_from_db()
        return member

    return make


@pytest.fixture
def now() -> Any:
    return timezone.now()


@pytest.fixture
def journey_on(settings: Any, demo: None) -> Iterator[None]:
    """The demo club with its welcome journey counting purchases and events
    (the test settings switch it off: the other suites count points exactly)."""
    settings.LOJAL_JOURNEY_ENABLED = True
    journey_forget()
    yield
    journey_forget()


@pytest.fixture(autouse=True)
def _fresh_catalogue() -> Iterator[None]:
    """Each test starts from the benefit catalogue in its own database."""
    catalogue_forget()
    campaigns_forget()
    yield
    catalogue_forget()
    campaigns_forget()


@pytest.fixture
def gold(make_member: Any) -> Any:
    return set_tier(make_member(market="SE"), "gold")


@pytest.fixture
def silver(make_member: Any) -> Any:
    return set_tier(make_member(market="SE"), "silver")
