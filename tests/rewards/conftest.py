"""Fixtures and helpers the benefit tests share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from club.models import Tier
from members.models import Member
from rewards.selectors import catalogue_forget


@pytest.fixture(autouse=True)
def _fresh_catalogue() -> Iterator[None]:
    """Each test starts from the catalogue in its own database."""
    catalogue_forget()
    yield
    catalogue_forget()


def benefits_url(member: Any) -> str:
    return f"/api/v1/members/{member.member_number}/benefits"


def use_url(member: Any, code: str) -> str:
    return f"/api/v1/members/{member.member_number}/benefits/{code}/use"


def use(api: Any, member: Any, code: str, store: str = "SE-001", key: str | None = None,
        **body: Any) -> Any:
    """POST .../benefits/{code}/use with a fresh Idempotency-Key unless given."""
    return api.post(use_url(member, code), {"store_code": store, **body}, format="json",
                    HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def set_tier(member: Member, code: str) -> Member:
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code=code))
    member.refresh_from_db()
    return member


@pytest.fixture
def gold(make_member: Any) -> Member:
    return set_tier(make_member(market="SE"), "gold")


@pytest.fixture
def silver(make_member: Any) -> Member:
    return set_tier(make_member(market="SE"), "silver")
