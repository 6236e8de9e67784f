"""Points endpoints: redemptions, the ledger, adjustments; and the member
summary every points-changing answer carries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import HoldExpired, InsufficientPoints, MemberInactive, NotFound, UnknownStore
from core.fields import MemberRefIn
from core.http import StrictSerializer, next_link, page_size, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from loyalty import services
from loyalty.models import LedgerEntry, Redemption
from loyalty.selectors import member_ledger
from members.selectors import visible_member

CREATED = status.HTTP_201_CREATED


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


class ValueOut(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()


class RedemptionOut(serializers.Serializer):
    redemption_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Redemption.Status.choices)
    points = serializers.IntegerField()
    value = ValueOut()
    expires_at = serializers.DateTimeField(allow_null=True)
    reference = serializers.CharField()
    store_code = serializers.CharField()
    member = MemberSummaryOut()


class EntryOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
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


class RedemptionApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(
        request=RedemptionIn,
        operation_id="redemptions_create",
        responses={
            201: RedemptionOut,
            **errors(NotFound, MemberInactive, UnknownStore, InsufficientPoints),
        },
        parameters=[idempotency_key(required=True)],
    )
    def post(self, request: Request) -> Response:
        data = parse(RedemptionIn, request.data)

        def redeem() -> tuple[int, dict[str, Any], bool]:
            body = services.points_redeem(
                actor=request.user,
                member_ref=data["member"],
                points=data["points"],
                store_code=data["store_code"],
                reference=data["reference"],
                capture=data["capture"],
            )
            return CREATED, RedemptionOut(body).data, False

        return run_idempotent(request, required=True, action=redeem)


class RedemptionCaptureApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(
        request=None,
        responses={200: RedemptionOut, **errors(HoldExpired, MemberInactive)},
        operation_id="redemptions_capture",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request, redemption_id: str) -> Response:
        # Outside the idempotent transaction, which a hold_expired refusal rolls back.
        services.redemption_expire_due(actor=request.user, redemption_id=redemption_id)

        def capture() -> tuple[int, dict[str, Any], bool]:
            body = services.redemption_capture(actor=request.user, redemption_id=redemption_id)
            return 200, RedemptionOut(body).data, False

        return run_idempotent(request, required=False, action=capture)


class RedemptionCancelApi(APIView):
    scopes = {"POST": "points:redeem"}

    @extend_schema(
        request=None,
        responses={200: RedemptionOut, **errors(MemberInactive)},
        operation_id="redemptions_cancel",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request, redemption_id: str) -> Response:
        def cancel() -> tuple[int, dict[str, Any], bool]:
            body = services.redemption_cancel(actor=request.user, redemption_id=redemption_id)
            return 200, RedemptionOut(body).data, False

        return run_idempotent(request, required=False, action=cancel)


class LedgerApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses={200: LedgerOut},
        operation_id="members_ledger",
    )
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        results, cursor = member_ledger(
            member_id=member.pk,
            cursor=request.query_params.get("cursor"),
            size=page_size(request.query_params.get("page_size")),
        )
        page = {"results": results, "next": next_link(request, cursor) if cursor else None}
        return Response(LedgerOut(page).data)


class AdjustmentApi(APIView):
    scopes = {"POST": "points:adjust"}

    @extend_schema(
        request=AdjustmentIn,
        responses={201: AdjustmentOut, **errors(MemberInactive)},
        operation_id="members_adjust",
        parameters=[idempotency_key(required=True)],
    )
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        data = parse(AdjustmentIn, request.data)

        def adjust() -> tuple[int, dict[str, Any], bool]:
            body = services.points_adjust(
                member=member, points=data["points"], reason=data["reason"], actor=request.user
            )
            return CREATED, AdjustmentOut(body).data, False

        return run_idempotent(request, required=True, action=adjust)
