"""Welcome-journey endpoints: activity events in, the member's missions out."""

from __future__ import annotations

import re
from typing import Any

import orjson
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import IdempotencyKeyReused, MemberInactive, NotFound
from core.fields import AwareDateTimeField, MemberRefIn
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from journeys.models import Mission
from journeys.services import event_record, member_missions
from members.selectors import visible_member

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
MAX_PROPERTIES_BYTES = 4096


class EventIn(StrictSerializer):
    member = MemberRefIn()
    type = serializers.RegexField(
        EVENT_TYPE,
        max_length=64,
        error_messages={
            "invalid": "Lower-case letters, digits and _ . : - (at most 64), "
            "starting with a letter."
        },
    )
    occurred_at = AwareDateTimeField()
    properties = serializers.DictField(required=False, default=dict)
    event_id = serializers.CharField(max_length=100, required=False, allow_blank=False)

    def validate_properties(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(orjson.dumps(value)) > MAX_PROPERTIES_BYTES:
            raise serializers.ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes of JSON.")
        return value


class EventOut(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.CharField(allow_null=True)
    member_number = serializers.CharField()
    type = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    properties = serializers.DictField()
    missions_completed = serializers.ListField(
        child=serializers.CharField(), help_text="Codes of the missions this event completed."
    )


class MissionProgressOut(serializers.Serializer):
    current = serializers.IntegerField()
    target = serializers.IntegerField()


class MissionRewardOut(serializers.Serializer):
    """Exactly one of `points` and `reward`."""

    points = serializers.IntegerField(required=False)
    reward = serializers.CharField(required=False, help_text="The code of the reward's voucher.")


class MissionOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    goal = serializers.ChoiceField(choices=Mission.Goal.choices)
    status = serializers.ChoiceField(choices=["upcoming", "in_progress", "completed", "missed"])
    progress = MissionProgressOut()
    starts_on = serializers.DateField()
    deadline = serializers.DateField(help_text="The last day that counts, in the member's market.")
    reward = MissionRewardOut()
    completed_at = serializers.DateTimeField(allow_null=True)


class EventApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(
        request=EventIn,
        operation_id="events_record",
        # idempotency_key_reused also answers an event_id recorded with another time or properties.
        responses={201: EventOut, **errors(NotFound, MemberInactive, IdempotencyKeyReused)},
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(EventIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body, replayed = event_record(
                actor=request.user,
                member_ref=data["member"],
                event_type=data["type"],
                occurred_at=data["occurred_at"],
                properties=data["properties"],
                event_id=data.get("event_id"),
            )
            return status.HTTP_201_CREATED, EventOut(body).data, replayed

        return run_idempotent(request, required=False, action=record)


class MemberMissionsApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(responses={200: MissionOut(many=True)}, operation_id="missions_list")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        return Response(MissionOut(member_missions(member=member), many=True).data)
