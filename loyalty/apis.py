"""Points endpoints: purchases, returns, redemptions, ledger, adjustments."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.fields import AwareDateTimeField, MemberRefIn, currency, money
from config.http import StrictSerializer, next_link, page_size, parse
from config.idempotency import run_idempotent
from loyalty import services
from loyalty.selectors import member_ledger
from loyalty.services import Line
from members.apis import MemberSummaryOut
from members.selectors import visible_member

CREATED = status.HTTP_201_CREATED


class LineIn(StrictSerializer):
    sku = serializers.CharField(max_length=64)
    category = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False, default=1)
    amount = money()


class PurchaseIn(StrictSerializer):
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
    store_code = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)
    original = OriginalIn()
    occurred_at = AwareDateTimeField()
    currency = currency()
    total = money()
    lines = LineIn(many=True, allow_empty=False, max_length=500)


class RedemptionIn(StrictSerializer):
    member = MemberRefIn()
    points = serializers.IntegerField(min_value=1, max_value=services.MAX_POINTS)
    store_code = serializers.CharField(max_length=32)
    reference = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    capture = serializers.BooleanField(required=False, default=True)


class AdjustmentIn(StrictSerializer):
    points = serializers.IntegerField(min_value=-services.MAX_POINTS, max_value=services.MAX_POINTS)
    reason = serializers.CharField(max_length=255)

    def validate_points(self, value: int) -> int:
        if value == 0:
            raise serializers.ValidationError("Must not be zero.")
        return value


class PurchaseOut(serializers.Serializer):
    purchase_id = serializers.UUIDField()
    receipt_id = serializers.CharField()
    points_earned = serializers.IntegerField()
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


class ValueOut(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


class RedemptionOut(serializers.Serializer):
    redemption_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["held", "captured", "cancelled", "expired"])
    points = serializers.IntegerField()
    value = ValueOut()
    expires_at = serializers.DateTimeField(allow_null=True)
    reference = serializers.CharField()
    store_code = serializers.CharField()
    member = MemberSummaryOut()


class EntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    points = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    reference = serializers.CharField()
    expires_on = serializers.DateField(allow_null=True)


class LedgerOut(serializers.Serializer):
    results = EntryOut(many=True)
    next = serializers.URLField(allow_null=True)


class AdjustmentOut(serializers.Serializer):
    entry = EntryOut()
    member = MemberSummaryOut()


def _lines(raw: list[dict[str, Any]]) -> list[Line]:
    return [Line(sku=l["sku"], amount=l["amount"], quantity=l["quantity"],
                 category=l.get("category", "")) for l in raw]


class PurchaseApi(APIView):
    scopes = {"POST": "purchases:write"}

    @extend_schema(request=PurchaseIn, responses={201: PurchaseOut}, operation_id="purchases_record")
    def post(self, request: Request) -> Response:
        data = parse(PurchaseIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body, replayed = services.purchase_record(
                client=request.user, member_ref=data["member"], store_code=data["store_code"],
                receipt_id=data["receipt_id"], channel=data["channel"],
                occurred_at=data["occurred_at"], currency=data["currency"], total=data["total"],
                lines=_lines(data["lines"]),
            )
            return CREATED, body, replayed

        return run_idempotent(request, required=False, action=record)


class ReturnApi(APIView):
    scopes = {"POST": "purchases:write"}

    @extend_schema(request=ReturnIn, responses={201: ReturnOut}, operation_id="returns_record")
    def post(self, request: Request) -> Response:
        data = parse(ReturnIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body, replayed = services.return_record(
                client=request.user, store_code=data["store_code"], receipt_id=data["receipt_id"],
                original_store_code=data["original"]["store_code"],
                original_receipt_id=data["original"]["receipt_id"],
                occurred_at=data["occurred_at"], currency=data["currency"], total=data["total"],
                lines=_lines(data["lines"]),
            )
            return CREATED, body, replayed

        return run_idempotent(request, required=False, action=record)


class RedemptionApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(request=RedemptionIn, responses={201: RedemptionOut},
                   operation_id="redemptions_create",
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)])
    def post(self, request: Request) -> Response:
        data = parse(RedemptionIn, request.data)

        def redeem() -> tuple[int, dict[str, Any], bool]:
            body = services.points_redeem(
                client=request.user, member_ref=data["member"], points=data["points"],
                store_code=data["store_code"], reference=data["reference"],
                capture=data["capture"],
            )
            return CREATED, body, False

        return run_idempotent(request, required=True, action=redeem)


class RedemptionCaptureApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(request=None, responses={200: RedemptionOut}, operation_id="redemptions_capture")
    def post(self, request: Request, redemption_id: str) -> Response:
        # Outside the idempotent transaction, which a hold_expired refusal rolls back.
        services.redemption_expire_due(client=request.user, redemption_id=redemption_id)

        def capture() -> tuple[int, dict[str, Any], bool]:
            return 200, services.redemption_capture(client=request.user, redemption_id=redemption_id), False

        return run_idempotent(request, required=False, action=capture)


class RedemptionCancelApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(request=None, responses={200: RedemptionOut}, operation_id="redemptions_cancel")
    def post(self, request: Request, redemption_id: str) -> Response:
        def cancel() -> tuple[int, dict[str, Any], bool]:
            return 200, services.redemption_cancel(client=request.user, redemption_id=redemption_id), False

        return run_idempotent(request, required=False, action=cancel)


class LedgerApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses={200: LedgerOut},
        operation_id="members_ledger",
    )
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        results, cursor = member_ledger(
            member_id=member.pk,
            cursor=request.query_params.get("cursor"),
            size=page_size(request.query_params.get("page_size")),
        )
        return Response({"results": results, "next": next_link(request, cursor) if cursor else None})


class AdjustmentApi(APIView):
    scopes = {"POST": "points:adjust"}

    @extend_schema(request=AdjustmentIn, responses={201: AdjustmentOut},
                   operation_id="members_adjust",
                   parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)])
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        data = parse(AdjustmentIn, request.data)

        def adjust() -> tuple[int, dict[str, Any], bool]:
            body = services.points_adjust(member=member, points=data["points"],
                                          reason=data["reason"], client=request.user)
            return CREATED, body, False

        return run_idempotent(request, required=True, action=adjust)
