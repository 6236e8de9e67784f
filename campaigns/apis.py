"""Campaigns and experiments over HTTP (API.md, "Campaigns", "Experiments")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import experiments, selectors, services
from campaigns.models import Campaign, Experiment
from core.errors import (
    AlreadyExists,
    ExperimentLocked,
    InvalidState,
    MemberInactive,
    NotFound,
    ValidationFailed,
)
from core.fields import AwareDateTimeField, MemberRefIn, money
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


# --- experiments -----------------------------------------------------------------


class VariantIn(StrictSerializer):
    code = serializers.RegexField(CODE, max_length=64, error_messages=CODE_MESSAGE)
    weight = serializers.IntegerField(min_value=1, max_value=1_000_000)
    campaign = serializers.CharField(max_length=64, required=False, allow_null=True)


def _variants(required: bool = True) -> serializers.ListField:
    return serializers.ListField(child=VariantIn(), min_length=2, max_length=20, required=required)


class ExperimentIn(StrictSerializer):
    code = serializers.RegexField(CODE, max_length=64, error_messages=CODE_MESSAGE)
    name = serializers.CharField(max_length=200)
    market = serializers.CharField(max_length=2)
    hypothesis = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    metric = serializers.ChoiceField(choices=Experiment.Metric.choices)
    window_days = serializers.IntegerField(min_value=1, max_value=366)
    variants = _variants()
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()


class ExperimentPatchIn(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    hypothesis = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    ends_at = AwareDateTimeField(required=False)
    metric = serializers.ChoiceField(choices=Experiment.Metric.choices, required=False)
    variants = _variants(required=False)


class VariantOut(serializers.Serializer):
    code = serializers.CharField()
    weight = serializers.IntegerField()
    campaign = serializers.CharField(allow_null=True)


class ExperimentOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    market = serializers.CharField()
    hypothesis = serializers.CharField(allow_blank=True)
    metric = serializers.ChoiceField(choices=Experiment.Metric.choices)
    window_days = serializers.IntegerField()
    variants = VariantOut(many=True)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=selectors.EXPERIMENT_STATUSES)
    members = serializers.IntegerField(help_text="Members assigned so far.")


class ExposureIn(StrictSerializer):
    member = MemberRefIn()


class ExposureOut(serializers.Serializer):
    variant = serializers.CharField()
    assigned_at = serializers.DateTimeField()


class SrmOut(serializers.Serializer):
    p_value = serializers.FloatField()
    ok = serializers.BooleanField()


class VariantResultOut(serializers.Serializer):
    code = serializers.CharField()
    members = serializers.IntegerField()
    sum = serializers.FloatField()
    sum_squares = serializers.FloatField()
    mean = serializers.FloatField(allow_null=True)


def _interval() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(), min_length=2, max_length=2, allow_null=True
    )


class EstimateOut(serializers.Serializer):
    effect = serializers.FloatField(allow_null=True)
    ci95 = _interval()
    p_value = serializers.FloatField(allow_null=True)


class SequentialOut(serializers.Serializer):
    ci95 = _interval()


class ComparisonOut(serializers.Serializer):
    variant = serializers.CharField()
    baseline = serializers.CharField()
    absolute = EstimateOut()
    relative = EstimateOut()
    sequential = SequentialOut()
    decision = serializers.ChoiceField(choices=["better", "worse", "inconclusive", "invalid"])


class ResultsOut(serializers.Serializer):
    code = serializers.CharField()
    metric = serializers.ChoiceField(choices=Experiment.Metric.choices)
    status = serializers.ChoiceField(choices=selectors.EXPERIMENT_STATUSES)
    srm = SrmOut()
    variants = VariantResultOut(many=True)
    comparisons = ComparisonOut(many=True)


def _experiment(request: Request, code: str) -> Experiment:
    query = parse(CampaignDetailIn, request.query_params.dict())
    return experiments.experiment_find(
        actor=request.user, code=code, market_code=query.get("market")
    )


class ExperimentCollectionApi(APIView):
    scopes = {"POST": "campaigns:write"}

    @extend_schema(
        request=ExperimentIn,
        responses={201: ExperimentOut, **errors(AlreadyExists)},
        operation_id="experiments_create",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(ExperimentIn, request.data)

        def create() -> tuple[int, dict[str, Any], bool]:
            experiment = experiments.experiment_create(
                actor=request.user,
                code=data["code"],
                name=data["name"],
                market_code=data["market"],
                hypothesis=data.get("hypothesis", ""),
                metric=data["metric"],
                window_days=data["window_days"],
                variants=data["variants"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
            )
            body = ExperimentOut(selectors.experiment_view(experiment)).data
            return status.HTTP_201_CREATED, body, False

        return run_idempotent(request, required=False, action=create)


class ExperimentDetailApi(APIView):
    scopes = {"GET": "insights:read", "PATCH": "campaigns:write"}

    @extend_schema(
        parameters=[MARKET_PARAM],
        responses={200: ExperimentOut, **errors(NotFound)},
        operation_id="experiments_read",
    )
    def get(self, request: Request, code: str) -> Response:
        return Response(ExperimentOut(selectors.experiment_view(_experiment(request, code))).data)

    @extend_schema(
        parameters=[MARKET_PARAM],
        request=ExperimentPatchIn,
        responses={200: ExperimentOut, **errors(NotFound, ExperimentLocked, InvalidState)},
        operation_id="experiments_update",
    )
    def patch(self, request: Request, code: str) -> Response:
        changes = parse(ExperimentPatchIn, request.data)
        experiment = experiments.experiment_update(
            actor=request.user, experiment=_experiment(request, code), changes=changes
        )
        return Response(ExperimentOut(selectors.experiment_view(experiment)).data)


class ExposureApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(
        parameters=[MARKET_PARAM, idempotency_key(required=False)],
        request=ExposureIn,
        responses={200: ExposureOut, **errors(NotFound, MemberInactive, InvalidState)},
        operation_id="experiments_expose",
    )
    def post(self, request: Request, code: str) -> Response:
        data = parse(ExposureIn, request.data)

        def expose() -> tuple[int, dict[str, Any], bool]:
            assigned = experiments.exposure_record(
                actor=request.user,
                experiment=_experiment(request, code),
                member_ref=data["member"],
            )
            return status.HTTP_200_OK, ExposureOut(assigned).data, False

        # The assignment is idempotent by itself; a key replays the answer too.
        return run_idempotent(request, required=False, action=expose)


class ResultsApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[MARKET_PARAM],
        responses={200: ResultsOut, **errors(NotFound)},
        operation_id="experiments_results",
    )
    def get(self, request: Request, code: str) -> Response:
        results = experiments.experiment_results(experiment=_experiment(request, code))
        return Response(ResultsOut(results).data)
