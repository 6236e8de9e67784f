"""Member endpoints: enrolment, lookup, profile, cards."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed
from config.http import StrictSerializer, parse
from config.idempotency import run_idempotent
from members import services
from members.models import Member
from members.selectors import LOOKUP_KINDS, member_detail, member_lookup, visible_member


class ConsentsIn(StrictSerializer):
    marketing_email = serializers.BooleanField(required=False)
    marketing_sms = serializers.BooleanField(required=False)
    profiling = serializers.BooleanField(required=False)


class _ProfileIn(StrictSerializer):
    email = serializers.EmailField(max_length=254, required=False, allow_null=True, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_null=True, allow_blank=True)
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False, allow_null=True)
    language = serializers.CharField(max_length=8, required=False, allow_blank=True)
    consents = ConsentsIn(required=False)

    def validate_birth_date(self, value: Any) -> Any:
        from django.utils import timezone

        if value is not None and not (1900 <= value.year and value <= timezone.now().date()):
            raise serializers.ValidationError("Not a plausible birth date.")
        return value


class EnrolIn(_ProfileIn):
    market = serializers.CharField(max_length=2)
    channel = serializers.ChoiceField(choices=Member.Channel.choices, required=False)
    store_code = serializers.CharField(max_length=32, required=False, allow_null=True)


class MemberPatchIn(_ProfileIn):
    pass


class TierOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    valid_until = serializers.DateField(allow_null=True)


class ExpiringOut(serializers.Serializer):
    points = serializers.IntegerField()
    on = serializers.DateField()


class PointsOut(serializers.Serializer):
    balance = serializers.IntegerField()
    pending = serializers.IntegerField()
    expiring = ExpiringOut(allow_null=True)


class MemberSummaryOut(serializers.Serializer):
    member_number = serializers.CharField()
    tier = TierOut()
    points = PointsOut()


class MemberOut(MemberSummaryOut):
    cards = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    market = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    email = serializers.EmailField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    birth_date = serializers.DateField(allow_null=True)
    language = serializers.CharField()
    channel = serializers.CharField()
    enrolled_at = serializers.DateTimeField()
    consents = ConsentsIn()


class BenefitBriefOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    remaining = serializers.IntegerField(allow_null=True)


class LookupOut(serializers.Serializer):
    member_number = serializers.CharField()
    status = serializers.CharField()
    market = serializers.CharField()
    first_name = serializers.CharField()
    tier = TierOut()
    points = PointsOut()
    benefits = BenefitBriefOut(many=True)


class CardOut(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.CharField()


class MemberCollectionApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(request=EnrolIn, responses={201: MemberOut}, operation_id="members_enrol")
    def post(self, request: Request) -> Response:
        data = parse(EnrolIn, request.data)

        def enrol() -> tuple[int, dict[str, Any], bool]:
            member = services.member_enrol(
                client=request.user,
                market_code=data["market"],
                email=data.get("email"),
                phone=data.get("phone"),
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
                birth_date=data.get("birth_date"),
                language=data.get("language", ""),
                channel=data.get("channel", Member.Channel.STORE),
                store_code=data.get("store_code"),
                consents=data.get("consents"),
            )
            return status.HTTP_201_CREATED, member_detail(member=member), False

        return run_idempotent(request, required=False, action=enrol)


class MemberLookupApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[OpenApiParameter(kind, str, required=False) for kind in LOOKUP_KINDS],
        responses={200: LookupOut},
        operation_id="members_lookup",
    )
    def get(self, request: Request) -> Response:
        given = [(k, v) for k, v in request.query_params.items() if k in LOOKUP_KINDS]
        unknown = [k for k in request.query_params if k not in LOOKUP_KINDS]
        if len(given) != 1 or unknown or not given[0][1] or len(given[0][1]) > 254:
            raise ValidationFailed(
                "Give exactly one of card, member_number, phone or email.",
                errors={"query": ["Exactly one of card, member_number, phone, email."]},
            )
        kind, value = given[0]
        return Response(member_lookup(client=request.user, kind=kind, value=value))


class MemberDetailApi(APIView):
    scopes = {"GET": "members:read", "PATCH": "members:write"}

    @extend_schema(responses={200: MemberOut}, operation_id="members_read")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        return Response(member_detail(member=member))

    @extend_schema(request=MemberPatchIn, responses={200: MemberOut}, operation_id="members_update")
    def patch(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        changes = parse(MemberPatchIn, request.data)
        member = services.member_update(member=member, changes=changes, client=request.user)
        return Response(member_detail(member=member))


class CardCollectionApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(request=None, responses={201: CardOut}, operation_id="cards_issue")
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        if request.data:
            parse(StrictSerializer, request.data)

        def issue() -> tuple[int, dict[str, Any], bool]:
            card = services.card_issue(member=member)
            return status.HTTP_201_CREATED, {"number": card.number, "status": card.status}, False

        return run_idempotent(request, required=False, action=issue)


class CardDetailApi(APIView):
    scopes = {"DELETE": "members:write"}

    @extend_schema(responses={204: None}, operation_id="cards_block")
    def delete(self, request: Request, member_number: str, card: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        services.card_block(member=member, number=card)
        return Response(status=status.HTTP_204_NO_CONTENT)
