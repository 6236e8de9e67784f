"""Benefit endpoints: the member's benefits, and using one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.http import StrictSerializer, parse
from config.idempotency import run_idempotent
from members.selectors import visible_member
from rewards import services
from rewards.models import Benefit
from rewards.selectors import member_benefits


class BenefitOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Benefit.Kind.choices)
    remaining = serializers.IntegerField(allow_null=True, help_text="Null when unlimited.")
    period = serializers.ChoiceField(choices=Benefit.Period.choices)
    resets_on = serializers.DateField(allow_null=True, help_text="Null when it never resets.")
    channel = serializers.ChoiceField(choices=Benefit.Channel.choices)
    description = serializers.CharField(allow_blank=True)


class BenefitUseIn(StrictSerializer):
    store_code = serializers.CharField(max_length=32)


class BenefitUseOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Benefit.Kind.choices)
    remaining = serializers.IntegerField(allow_null=True)
    period = serializers.ChoiceField(choices=Benefit.Period.choices)
    resets_on = serializers.DateField(allow_null=True)
    used_at = serializers.DateTimeField()
    store_code = serializers.CharField()
    member_number = serializers.CharField()


class MemberBenefitsApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(responses={200: BenefitOut(many=True)}, operation_id="benefits_list")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        return Response(member_benefits(member_id=member.pk))


class BenefitUseApi(APIView):
    scopes = {"POST": "benefits:use"}

    @extend_schema(
        request=BenefitUseIn, responses={201: BenefitUseOut}, operation_id="benefits_use",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
    )
    def post(self, request: Request, member_number: str, code: str) -> Response:
        member = visible_member(client=request.user, member_number=member_number)
        data = parse(BenefitUseIn, request.data)

        def use() -> tuple[int, dict[str, Any], bool]:
            body = services.benefit_use(client=request.user, member=member, benefit_code=code,
                                        store_code=data["store_code"])
            return status.HTTP_201_CREATED, body, False

        return run_idempotent(request, required=True, action=use)
