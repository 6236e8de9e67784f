"""The NPS survey call and the insights reports: thin views over
insights.services and insights.selectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import MemberInactive, NotFound, UnknownStore, ValidationFailed
from core.fields import AwareDateTimeField, MemberRefIn
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from insights import selectors
from insights.models import NpsResponse
from insights.services import nps_response_record
from loyalty.apis import MemberSummaryOut
from members.selectors import visible_member

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
MAX_DAYS = 3660
MAX_MONTHS = 120


# --- in ------------------------------------------------------------------------------


class NpsIn(StrictSerializer):
    member = MemberRefIn()
    score = serializers.IntegerField(min_value=0, max_value=10)
    touchpoint = serializers.ChoiceField(choices=NpsResponse.Touchpoint.choices)
    store_code = serializers.CharField(max_length=32, required=False, allow_null=True)
    comment = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, trim_whitespace=False, default=""
    )
    occurred_at = AwareDateTimeField()


class _MarketQuery(StrictSerializer):
    fields_once = True  # fixed by the class: bound once per process (core.http.parse)

    market = serializers.CharField(max_length=2, required=False)


class NpsQuery(_MarketQuery):
    to = serializers.DateField()
    group_by = serializers.ChoiceField(choices=selectors.NPS_GROUPS, required=False)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField()  # a Python keyword: not a class attribute
        return fields

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data["from"] > data["to"]:
            raise serializers.ValidationError({"from": ["Must not be after `to`."]})
        if (data["to"] - data["from"]).days > MAX_DAYS:
            raise serializers.ValidationError({"from": [f"At most {MAX_DAYS} days."]})
        return data


def _first_of(month: str) -> dt.date:
    year, number = month.split("-")
    return dt.date(int(year), int(number), 1)


class RetentionQuery(_MarketQuery):
    to = serializers.RegexField(MONTH, required=False, error_messages={"invalid": "YYYY-MM."})

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.RegexField(
            MONTH, required=False, error_messages={"invalid": "YYYY-MM."}
        )
        return fields


class LiabilityQuery(_MarketQuery):
    as_of = serializers.DateField(required=False)


# --- out -----------------------------------------------------------------------------


class NpsOut(serializers.Serializer):
    response_id = serializers.IntegerField()
    score = serializers.IntegerField()
    category = serializers.ChoiceField(choices=["promoter", "passive", "detractor"])
    touchpoint = serializers.ChoiceField(choices=NpsResponse.Touchpoint.choices)
    store_code = serializers.CharField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    occurred_at = serializers.DateTimeField()
    member = MemberSummaryOut()


class _NpsFiguresOut(serializers.Serializer):
    responses = serializers.IntegerField()
    promoters = serializers.IntegerField()
    passives = serializers.IntegerField()
    detractors = serializers.IntegerField()
    nps = serializers.FloatField(
        allow_null=True, help_text="100 x (promoters - detractors) / responses; null without any."
    )
    ci95 = serializers.ListField(
        child=serializers.FloatField(),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="The adjusted Wald interval; null without responses.",
    )


class NpsGroupOut(_NpsFiguresOut):
    key = serializers.CharField(
        allow_null=True, help_text="Touchpoint, store code (null: no store), tier code or YYYY-MM."
    )


class NpsReportOut(_NpsFiguresOut):
    market = serializers.CharField()
    to = serializers.DateField()
    groups = NpsGroupOut(many=True, required=False, help_text="Only with `group_by`.")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        return fields


class CohortOut(serializers.Serializer):
    cohort = serializers.CharField(help_text="The enrolment month, YYYY-MM.")
    members = serializers.IntegerField()
    active = serializers.ListField(child=serializers.IntegerField())
    retention = serializers.ListField(child=serializers.FloatField())


class RetentionOut(serializers.Serializer):
    market = serializers.CharField()
    cohorts = CohortOut(many=True)


class SegmentOut(serializers.Serializer):
    segment = serializers.ChoiceField(choices=[s for s, _ in selectors.SEGMENTS])
    action = serializers.ChoiceField(choices=["keep", "develop", "let_go"])
    members = serializers.IntegerField()
    share = serializers.FloatField()
    revenue_12m = serializers.CharField(help_text="Net spend of the 12 months, a decimal string.")
    revenue_share = serializers.FloatField()


class SegmentsOut(serializers.Serializer):
    market = serializers.CharField()
    as_of = serializers.DateField(allow_null=True)
    members = serializers.IntegerField(help_text="Members in a segment.")
    segments = SegmentOut(many=True)


class PurchaseModelOut(serializers.Serializer):
    name = serializers.ChoiceField(choices=["bg_nbd"])
    r = serializers.FloatField()
    alpha = serializers.FloatField()
    a = serializers.FloatField()
    b = serializers.FloatField()
    log_likelihood = serializers.FloatField()


class SpendModelOut(serializers.Serializer):
    name = serializers.ChoiceField(choices=["gamma_gamma"])
    p = serializers.FloatField()
    q = serializers.FloatField()
    gamma = serializers.FloatField()
    members = serializers.IntegerField()
    log_likelihood = serializers.FloatField()


class ModelOut(serializers.Serializer):
    market = serializers.CharField()
    as_of = serializers.DateField()
    time_unit = serializers.ChoiceField(choices=["week"])
    members = serializers.IntegerField()
    purchase_model = PurchaseModelOut(allow_null=True)
    spend_model = SpendModelOut(allow_null=True)


class OutstandingOut(serializers.Serializer):
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    total = serializers.IntegerField()
    value = serializers.CharField(help_text="total x point value, a decimal string.")


class ExpiringMonthOut(serializers.Serializer):
    month = serializers.CharField()
    points = serializers.IntegerField()


class LiabilityMonthOut(serializers.Serializer):
    month = serializers.CharField()
    opening = serializers.IntegerField()
    earned = serializers.IntegerField()
    bonus = serializers.IntegerField()
    adjusted = serializers.IntegerField()
    returned = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    redeem_cancelled = serializers.IntegerField()
    expired = serializers.IntegerField()
    closing = serializers.IntegerField()


class LiabilityOut(serializers.Serializer):
    market = serializers.CharField()
    currency = serializers.CharField()
    as_of = serializers.DateField()
    point_value = serializers.CharField()
    outstanding = OutstandingOut()
    held = serializers.IntegerField(help_text="Points in holds not yet captured nor released.")
    expiring = ExpiringMonthOut(many=True)
    months = LiabilityMonthOut(many=True)
    breakage_rate_12m = serializers.FloatField(allow_null=True)


class MemberRfmOut(serializers.Serializer):
    recency_days = serializers.IntegerField(allow_null=True)
    frequency_12m = serializers.IntegerField()
    monetary_12m = serializers.CharField()
    r = serializers.IntegerField(allow_null=True)
    f = serializers.IntegerField(allow_null=True)
    m = serializers.IntegerField(allow_null=True)
    segment = serializers.CharField(allow_null=True)
    action = serializers.CharField(allow_null=True)


class MemberChurnOut(serializers.Serializer):
    p_alive = serializers.FloatField()
    expected_purchases_90d = serializers.FloatField()


class MemberValueOut(serializers.Serializer):
    expected_spend = serializers.CharField()
    clv_12m = serializers.CharField()
    currency = serializers.CharField()


class MemberNpsOut(serializers.Serializer):
    score = serializers.IntegerField()
    category = serializers.ChoiceField(choices=["promoter", "passive", "detractor"])
    answered_at = serializers.DateTimeField()


class MemberInsightsOut(serializers.Serializer):
    member_number = serializers.CharField()
    as_of = serializers.DateField(allow_null=True)
    profiling = serializers.BooleanField()
    rfm = MemberRfmOut(allow_null=True)
    churn = MemberChurnOut(allow_null=True)
    value = MemberValueOut(allow_null=True)
    nps = MemberNpsOut(allow_null=True)


# --- views -----------------------------------------------------------------------------

# The reports' selectors return the contract's JSON answer as it goes out
# (insights.selectors): the views send it as it is, without a serializer's
# pass over it, which cost more than the report's own read. The `...Out`
# serializers above document it (the OpenAPI schema); the tests check every
# answer against that schema (tests/contract.py) and each report against
# its serializer's rendering of it (tests/insights/test_report_answers.py).

MARKET = OpenApiParameter(
    "market",
    str,
    description="The market's code; required unless the key is bound to one market.",
)


def _query(serializer: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    return parse(serializer, request.query_params.dict())


class SurveyNpsApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(
        request=NpsIn,
        responses={201: NpsOut, **errors(NotFound, MemberInactive, UnknownStore)},
        operation_id="surveys_nps_answer",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(NpsIn, request.data)

        def record() -> tuple[int, dict[str, Any], bool]:
            body = nps_response_record(
                actor=request.user,
                member_ref=data["member"],
                score=data["score"],
                touchpoint=data["touchpoint"],
                occurred_at=data["occurred_at"],
                store_code=data.get("store_code"),
                comment=data.get("comment", ""),
            )
            return status.HTTP_201_CREATED, NpsOut(body).data, False

        return run_idempotent(request, required=False, action=record)


class NpsReportApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[
            MARKET,
            OpenApiParameter("from", dt.date, required=True, description="First day, included."),
            OpenApiParameter("to", dt.date, required=True, description="Last day, included."),
            OpenApiParameter("group_by", str, enum=list(selectors.NPS_GROUPS)),
        ],
        responses={200: NpsReportOut, **errors(NotFound)},
        operation_id="insights_nps",
    )
    def get(self, request: Request) -> Response:
        query = _query(NpsQuery, request)
        market = selectors.report_market(actor=request.user, code=query.get("market"))
        report = selectors.nps_report(
            market=market,
            date_from=query["from"],
            date_to=query["to"],
            group_by=query.get("group_by"),
        )
        return Response(report)


class RetentionApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[
            MARKET,
            OpenApiParameter(
                "from", str, description="First cohort, YYYY-MM (default: 11 months before `to`)."
            ),
            OpenApiParameter("to", str, description="Last cohort, YYYY-MM (default: this month)."),
        ],
        responses={200: RetentionOut, **errors(NotFound)},
        operation_id="insights_retention",
    )
    def get(self, request: Request) -> Response:
        query = _query(RetentionQuery, request)
        market = selectors.report_market(actor=request.user, code=query.get("market"))
        month_to = (
            _first_of(query["to"])
            if query.get("to")
            else selectors.today_for(market).replace(day=1)
        )
        month_from = (
            _first_of(query["from"]) if query.get("from") else selectors._add_months(month_to, -11)
        )
        if month_from > month_to:
            raise ValidationFailed(
                "from is after to.", errors={"from": ["Must not be after `to`."]}
            )
        if selectors._months_between(month_from, month_to) >= MAX_MONTHS:
            raise ValidationFailed(
                f"At most {MAX_MONTHS} cohorts.", errors={"from": [f"At most {MAX_MONTHS} months."]}
            )
        report = selectors.retention_report(market=market, month_from=month_from, month_to=month_to)
        return Response(report)


class SegmentsApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[MARKET],
        responses={200: SegmentsOut, **errors(NotFound)},
        operation_id="insights_segments",
    )
    def get(self, request: Request) -> Response:
        query = _query(_MarketQuery, request)
        market = selectors.report_market(actor=request.user, code=query.get("market"))
        return Response(selectors.segments_report(market=market))


class ModelApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[MARKET],
        responses={200: ModelOut, **errors(NotFound)},
        operation_id="insights_model",
        description="404 `not_found` also before the market's first `insights_refresh`.",
    )
    def get(self, request: Request) -> Response:
        query = _query(_MarketQuery, request)
        market = selectors.report_market(actor=request.user, code=query.get("market"))
        report = selectors.model_report(market=market)
        if report is None:
            raise NotFound(f"No model fitted for {market.code} yet: run insights_refresh.")
        return Response(report)


class LiabilityApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(
        parameters=[
            MARKET,
            OpenApiParameter("as_of", dt.date, description="Default: today (market time)."),
        ],
        responses={200: LiabilityOut, **errors(NotFound)},
        operation_id="insights_liability",
    )
    def get(self, request: Request) -> Response:
        query = _query(LiabilityQuery, request)
        market = selectors.report_market(actor=request.user, code=query.get("market"))
        as_of = query.get("as_of")
        if as_of is not None and as_of > selectors.today_for(market):
            raise ValidationFailed(
                "as_of lies in the future.", errors={"as_of": ["Lies in the future."]}
            )
        report = selectors.liability_report(market=market, as_of=as_of)
        return Response(report)


class MemberInsightsApi(APIView):
    scopes = {"GET": "insights:read"}

    @extend_schema(responses={200: MemberInsightsOut}, operation_id="members_insights")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        return Response(selectors.member_insights(member=member))
