"""Campaigns and experiments over HTTP (API.md, "Campaigns", "Experiments")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import selectors, services
from campaigns.models import Campaign
from core.errors import AlreadyExists, InvalidState, NotFound, ValidationFailed
from core.fields import AwareDateTimeField, money
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CODE_MESSAGE = {"invalid": "Letters, digits and _ . - (at most 64), starting with one."}
SEGMENT = r"^[a-z][a-z0-9_]{0,15}$"


def _codes(pattern: str = CODE, max_length: int = 64) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.RegexField(pattern, max_length=max_length),
        required=False,
        max_length=200,
    )


class RewardIn(StrictSerializer):
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices)
    factor = serializers.DecimalField(
        max_digits=6, decimal_places=3, min_value=Decimal("1.001"), max_value=100, required=False
    )
    points = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["kind"] == Campaign.Kind.MULTIPLIER:
            if "factor" not in attrs or "points" in attrs:
                raise serializers.ValidationError("A multiplier names `factor` (above 1) alone.")
        elif "points" not in attrs or "factor" in attrs:
            raise serializers.ValidationError("A points reward names `points` alone.")
        return attrs


class CampaignIn(StrictSerializer):
    code = serializers.RegexField(CODE, max_length=64, error_messages=CODE_MESSAGE)
    name = serializers.CharField(max_length=200)
    market = serializers.CharField(max_length=2)
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()
    channel = serializers.ChoiceField(choices=Campaign.Channel.choices, required=False)
    tiers = _codes()
    segments = _codes(SEGMENT, 16)
    stores = _codes()
    categories = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=200
    )
    skus = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=1000
    )
    min_amount = money(required=False)
    reward = RewardIn()
    budget_points = serializers.IntegerField(
        min_value=1, max_value=2_000_000_000, required=False, allow_null=True
    )
    per_member_limit = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    stackable = serializers.BooleanField(required=False)


class CampaignPatchIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    ends_at = AwareDateTimeField(required=False)
    budget_points = serializers.IntegerField(
        min_value=1, max_value=2_000_000_000, required=False, allow_null=True
    )
    paused = serializers.BooleanField(required=False)


class CampaignRewardOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Campaign.Kind.choices)
    factor = serializers.CharField(required=False, help_text="Multiplier campaigns.")
    points = serializers.IntegerField(required=False, help_text="Points campaigns.")


class CampaignOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    channel = serializers.ChoiceField(choices=Campaign.Channel.choices)
    tiers = serializers.ListField(child=serializers.CharField())
    segments = serializers.ListField(child=serializers.CharField())
    stores = serializers.ListField(child=serializers.CharField())
    categories = serializers.ListField(child=serializers.CharField())
    skus = serializers.ListField(child=serializers.CharField())
    min_amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    reward = CampaignRewardOut()
    budget_points = serializers.IntegerField(allow_null=True)
    per_member_limit = serializers.IntegerField(allow_null=True)
    stackable = serializers.BooleanField()
    paused = serializers.BooleanField()
    status = serializers.ChoiceField(choices=selectors.CAMPAIGN_STATUSES)
    spent_points = serializers.IntegerField(help_text="Bonus points booked, net of returns.")
    created_at = serializers.DateTimeField()


class CampaignListIn(StrictSerializer):
    market = serializers.CharField(max_length=2, required=False)
    status = serializers.ChoiceField(choices=selectors.CAMPAIGN_STATUSES, required=False)


class CampaignDetailIn(StrictSerializer):
    market = serializers.CharField(max_length=2, required=False)


MARKET_PARAM = OpenApiParameter(
    "market", str, description="The market, when the code is used in several."
)


class CampaignCollectionApi(APIView):
    scopes = {"GET": "members:read", "POST": "campaigns:write"}

    @extend_schema(
        request=CampaignIn,
        responses={201: CampaignOut, **errors(AlreadyExists)},
        operation_id="campaigns_create",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(CampaignIn, request.data)

        def create() -> tuple[int, dict[str, Any], bool]:
            reward = data["reward"]
            campaign = services.campaign_create(
                actor=request.user,
                code=data["code"],
                name=data["name"],
                market_code=data["market"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                kind=reward["kind"],
                factor=reward.get("factor"),
                points=reward.get("points"),
                channel=data.get("channel", Campaign.Channel.ANY),
                stores=data.get("stores"),
                tiers=data.get("tiers"),
                segments=data.get("segments"),
                categories=data.get("categories"),
                skus=data.get("skus"),
                min_amount=data.get("min_amount", Decimal(0)),
                budget_points=data.get("budget_points"),
                per_member_limit=data.get("per_member_limit"),
                stackable=data.get("stackable", False),
            )
            body = CampaignOut(selectors.campaign_view(campaign)).data
            return status.HTTP_201_CREATED, body, False

        return run_idempotent(request, required=False, action=create)

    @extend_schema(
        parameters=[
            OpenApiParameter("market", str),
            OpenApiParameter("status", str, enum=list(selectors.CAMPAIGN_STATUSES)),
        ],
        responses={200: CampaignOut(many=True)},
        operation_id="campaigns_list",
    )
    def get(self, request: Request) -> Response:
        query = parse(CampaignListIn, request.query_params.dict())
        found = selectors.campaigns_list(
            actor=request.user, market_code=query.get("market"), status=query.get("status")
        )
        return Response(CampaignOut(found, many=True).data)


class CampaignDetailApi(APIView):
    scopes = {"GET": "members:read", "PATCH": "campaigns:write", "DELETE": "campaigns:write"}

    def _find(self, request: Request, code: str) -> Campaign:
        query = parse(CampaignDetailIn, request.query_params.dict())
        return services.campaign_find(
            actor=request.user, code=code, market_code=query.get("market")
        )

    @extend_schema(
        parameters=[MARKET_PARAM],
        responses={200: CampaignOut, **errors(NotFound)},
        operation_id="campaigns_read",
    )
    def get(self, request: Request, code: str) -> Response:
        return Response(CampaignOut(selectors.campaign_view(self._find(request, code))).data)

    @extend_schema(
        parameters=[MARKET_PARAM],
        request=CampaignPatchIn,
        responses={200: CampaignOut, **errors(NotFound, ValidationFailed)},
        operation_id="campaigns_update",
    )
    def patch(self, request: Request, code: str) -> Response:
        changes = parse(CampaignPatchIn, request.data)
        campaign = services.campaign_update(
            actor=request.user, campaign=self._find(request, code), changes=changes
        )
        return Response(CampaignOut(selectors.campaign_view(campaign)).data)

    @extend_schema(
        parameters=[MARKET_PARAM],
        responses={204: None, **errors(NotFound, InvalidState)},
        operation_id="campaigns_delete",
    )
    def delete(self, request: Request, code: str) -> Response:
        services.campaign_delete(actor=request.user, campaign=self._find(request, code))
        return Response(status=status.HTTP_204_NO_CONTENT)
