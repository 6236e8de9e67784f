"""Input fields every app's serializers share."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from core.http import StrictSerializer

_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an offset: a receipt's time is never guessed."""

    def to_internal_value(self, value: Any) -> Any:
        if not isinstance(value, str) or not _OFFSET.search(value.strip()):
            raise serializers.ValidationError("An ISO 8601 time with an offset is required.")
        return super().to_internal_value(value)


def money(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=0, max_value=10**9, **kwargs
    )


def currency() -> serializers.RegexField:
    return serializers.RegexField(
        r"^[A-Z]{3}$", error_messages={"invalid": "A three-letter ISO 4217 code."}
    )


class MemberRefIn(StrictSerializer):
    card = serializers.CharField(max_length=32, required=False)
    member_number = serializers.CharField(max_length=10, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError(
                "Name the member by exactly one of card or member_number."
            )
        return attrs
