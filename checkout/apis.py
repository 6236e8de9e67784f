"""The till's and the web shop's calls about a member at the counter:
enrol, look up, read and update the member object (with its tier and
points), and post purchases and returns."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from checkout import services
from checkout.selectors import member_lookup
from core.errors import (
    CurrencyMismatch,
    MemberExists,
    MemberInactive,
    MultipleMatches,
    NotFound,
    ReceiptConflict,
    ReturnExceedsPurchase,
    UnknownStore,
    ValidationFailed,
)
from core.fields import AwareDateTimeField, MemberRefIn, currency, money
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from loyalty.apis import MemberSummaryOut, PointsOut, TierOut
from loyalty.selectors import member_detail
from loyalty.services import Line
from members.models import Member
from members.selectors import LOOKUP_KINDS, visible_member
from members.services import member_update

CREATED = status.HTTP_201_CREATED


class ConsentsIn(StrictSerializer):
    marketing_email = serializers.BooleanField(required=False)
    marketing_sms = serializers.BooleanField(required=False)
    profiling = serializers.BooleanField(required=False)


class _ProfileIn(StrictSerializer):
    email = serializers.EmailField(
        max_length=254, required=False, allow_null=True, allow_blank=True
    )
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


class ConsentsOut(serializers.Serializer):
    marketing_email = serializers.BooleanField()
    marketing_sms = serializers.BooleanField()
    profiling = serializers.BooleanField()


class MemberOut(serializers.Serializer):
    member_number = serializers.CharField()
    cards = serializers.ListField(child=serializers.CharField(), help_text="The active cards.")
    status = serializers.ChoiceField(choices=Member.Status.choices)
    market = serializers.CharField()
    first_name = serializers.CharField(allow_null=True, help_text="null once erased")
    last_name = serializers.CharField(allow_null=True, help_text="null once erased")
    email = serializers.EmailField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    birth_date = serializers.DateField(allow_null=True)
    language = serializers.CharField()
    channel = serializers.ChoiceField(choices=Member.Channel.choices)
    enrolled_at = serializers.DateTimeField()
    consents = ConsentsOut()
    tier = TierOut()
    points = PointsOut()


class BenefitBriefOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    remaining = serializers.IntegerField(allow_null=True)


class LookupOut(serializers.Serializer):
    member_number = serializers.CharField()
    status = serializers.ChoiceField(choices=Member.Status.choices)
    market = serializers.CharField()
    first_name = serializers.CharField()
    tier = TierOut()
    points = PointsOut()
    benefits = BenefitBriefOut(many=True)


class LineIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False, default=1)
    amount = money()


class PurchaseIn(StrictSerializer):
    fields_once = True  # the till's hot call (core.http.parse)
    member = MemberRefIn()
    store_code = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)
    channel = serializers.ChoiceField(choices=["store", "online"], required=False, default="store")
    occurred_at = AwareDateTimeField()
    currency = currency()
    total = money()
    lines = LineIn(many=True, allow_empty=False, max_length=500)


class OriginalIn(StrictSerializer):
    store_code = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)


class ReturnIn(StrictSerializer):
    fields_once = True
    store_code = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)
    original = OriginalIn()
    occurred_at = AwareDateTimeField()
    currency = currency()
    total = money()
    lines = LineIn(many=True, allow_empty=False, max_length=500)


class BonusOut(serializers.Serializer):
    campaign = serializers.CharField(help_text="The campaign's code.")
    points = serializers.IntegerField()


class PurchaseOut(serializers.Serializer):
    purchase_id = serializers.UUIDField()
    receipt_id = serializers.CharField()
    points_earned = serializers.IntegerField(help_text="Campaign bonuses included.")
    bonuses = BonusOut(many=True, help_text="What each campaign added; [] when none.")
    points_status = serializers.ChoiceField(choices=["pending", "available"])
    available_on = serializers.DateField()
    tier_changed = serializers.BooleanField()
    member = MemberSummaryOut()


class ReturnOut(serializers.Serializer):
    return_id = serializers.UUIDField()
    receipt_id = serializers.CharField()
    purchase_id = serializers.UUIDField()
    points_reversed = serializers.IntegerField()
    member = MemberSummaryOut()


class MemberCollectionApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(
        request=EnrolIn,
        responses={201: MemberOut, **errors(MemberExists, UnknownStore)},
        operation_id="members_enrol",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(EnrolIn, request.data)

        def enrol() -> tuple[int, dict[str, Any], bool]:
            member = services.member_enrol(
                actor=request.user,
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
            return status.HTTP_201_CREATED, MemberOut(member_detail(member=member)).data, False

        return run_idempotent(request, required=False, action=enrol)


class MemberLookupApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[OpenApiParameter(kind, str, required=False) for kind in LOOKUP_KINDS],
        responses={200: LookupOut, **errors(NotFound, MultipleMatches)},
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
        # The hottest call: the selector's dict goes out as it is (no serializer
        # pass); tests/contract.py checks it against LookupOut.
        return Response(member_lookup(actor=request.user, kind=kind, value=value))


class MemberDetailApi(APIView):
    scopes = {"GET": "members:read", "PATCH": "members:write"}

    @extend_schema(responses={200: MemberOut}, operation_id="members_read")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        return Response(MemberOut(member_detail(member=member)).data)

    @extend_schema(
        request=MemberPatchIn,
        responses={200: MemberOut, **errors(MemberExists, MemberInactive)},
        operation_id="members_update",
    )
    def patch(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        changes = parse(MemberPatchIn, request.data)
        member = member_update(member=member, changes=changes, actor=request.user)
        return Response(MemberOut(member_detail(member=member)).data)


def _lines(raw: list[dict[str, Any]]) -> list[Line]:
    return [
        Line(
            sku=line["sku"],
            amount=line["amount"],
            quantity=line["quantity"],
            category=line.get("category", ""),
        )
        for line in raw
    ]


class PurchaseApi(APIView):
    scopes = {"POST": "purchases:write"}

    @extend_schema(
        request=PurchaseIn,
        operation_id="purchases_record",
        responses={
            201: PurchaseOut,
            **errors(NotFound, ReceiptConflict, UnknownStore, MemberInactive, CurrencyMismatch),
        },
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(PurchaseIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body, replayed = services.purchase_record(
                actor=request.user,
                member_ref=data["member"],
                store_code=data["store_code"],
                receipt_id=data["receipt_id"],
                channel=data["channel"],
                occurred_at=data["occurred_at"],
                currency=data["currency"],
                total=data["total"],
                lines=_lines(data["lines"]),
            )
            # A hot path: the service's dict goes out as it is (no serializer
            # pass); tests/contract.py checks it against PurchaseOut.
            return CREATED, body, replayed

        return run_idempotent(request, required=False, action=record)


class ReturnApi(APIView):
    scopes = {"POST": "purchases:write"}

    @extend_schema(
        request=ReturnIn,
        operation_id="returns_record",
        responses={
            201: ReturnOut,
            **errors(
                NotFound,
                ReceiptConflict,
                UnknownStore,
                CurrencyMismatch,
                ReturnExceedsPurchase,
                MemberInactive,
            ),
        },
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(ReturnIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body, replayed = services.return_record(
                actor=request.user,
                store_code=data["store_code"],
                receipt_id=data["receipt_id"],
                original_store_code=data["original"]["store_code"],
                original_receipt_id=data["original"]["receipt_id"],
                occurred_at=data["occurred_at"],
                currency=data["currency"],
                total=data["total"],
                lines=_lines(data["lines"]),
            )
            return CREATED, ReturnOut(body).data, replayed

        return run_idempotent(request, required=False, action=record)
