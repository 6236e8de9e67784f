"""Reads about benefits, rewards and missions."""

from __future__ import annotations

from typing import Any


def usable_benefits(*, member_id: int) -> list[dict[str, Any]]:
    """The benefits a member can use now: [{"code", "name", "remaining"}].

    The benefit catalogue comes with its own issue; until then a member
    holds none, and the answers already have their place.
    """
    return []


def member_benefits(*, member_id: int) -> list[dict[str, Any]]:
    return []
