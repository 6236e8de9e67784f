"""Benefit endpoints (the member's benefits, and using one); rewards and
vouchers (the catalogue, claiming, the member's vouchers, redeeming one, its QR code)."""

from __future__ import annotations

import io
from typing import Any

import segno
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from club.models import Market
from core.errors import (
    BenefitNotAvailable,
    InsufficientPoints,
    MemberInactive,
    NotFound,
    RewardNotAvailable,
    UnknownStore,
    VoucherNotValid,
    VoucherUsed,
)
from core.http import OrjsonRenderer, StrictSerializer, next_link, page_size, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from loyalty.apis import MemberSummaryOut, ValueOut
from members.selectors import visible_member
from rewards import services
from rewards.codes import code_format
from rewards.models import Benefit, Voucher
from rewards.selectors import (
    member_benefits,
    member_vouchers,
    rewards_catalogue,
    visible_voucher,
    voucher_view,
)


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
        member = visible_member(actor=request.user, member_number=member_number)
        return Response(BenefitOut(member_benefits(member_id=member.pk), many=True).data)


class BenefitUseApi(APIView):
    scopes = {"POST": "benefits:use"}

    @extend_schema(
        request=BenefitUseIn,
        operation_id="benefits_use",
        responses={201: BenefitUseOut, **errors(MemberInactive, UnknownStore, BenefitNotAvailable)},
        parameters=[idempotency_key(required=True)],
    )
    def post(self, request: Request, member_number: str, code: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        data = parse(BenefitUseIn, request.data)

        def use() -> tuple[int, dict[str, Any], bool]:
            body = services.benefit_use(
                actor=request.user, member=member, benefit_code=code, store_code=data["store_code"]
            )
            return status.HTTP_201_CREATED, BenefitUseOut(body).data, False

        return run_idempotent(request, required=True, action=use)


# --- rewards and vouchers ----------------------------------------------------

REFUSALS = ["member_inactive", "not_offered", "tier", "out_of_stock", "insufficient_points"]


class RewardPriceOut(serializers.Serializer):
    market = serializers.CharField()
    points_cost = serializers.IntegerField()
    value = ValueOut(allow_null=True)


class RewardOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    points_cost = serializers.IntegerField(
        help_text="In the member's market (or the one asked for)."
    )
    value = ValueOut(
        allow_null=True, help_text="What the voucher is worth; null for a benefit in kind."
    )
    value_text = serializers.CharField(allow_blank=True, help_text='E.g. "A free coffee".')
    validity_days = serializers.IntegerField()
    stock = serializers.IntegerField(allow_null=True, help_text="Null when unlimited.")
    tiers = serializers.ListField(
        child=serializers.CharField(), help_text="The tiers that may claim it; empty: every tier."
    )
    active_until = serializers.DateTimeField(allow_null=True)
    prices = RewardPriceOut(many=True, help_text="The cost in each market in scope.")
    claimable = serializers.BooleanField(
        required=False, help_text="With member_number: can they claim it now."
    )
    reason = serializers.ChoiceField(
        choices=REFUSALS, allow_null=True, required=False, help_text="Why not, when not claimable."
    )
    reason_detail = serializers.CharField(allow_null=True, required=False)

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        # Without a member there is no claimable, reason or reason_detail
        # (DRF would write null for the two that allow it).
        for name, field in self.fields.items():
            if not field.required and name not in instance:
                data.pop(name, None)
        return data


class VoucherOut(serializers.Serializer):
    code = serializers.CharField(
        help_text="XXXX-XXXX-XXXXX; accepted with or without dashes, any case."
    )
    reward = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Voucher.Status.choices)
    source = serializers.ChoiceField(choices=Voucher.Source.choices)
    value = ValueOut(allow_null=True)
    value_text = serializers.CharField(allow_blank=True)
    points_cost = serializers.IntegerField()
    issued_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    redeemed_at = serializers.DateTimeField(allow_null=True)
    store_code = serializers.CharField(allow_null=True)
    receipt_id = serializers.CharField(allow_null=True)
    member_number = serializers.CharField()


class VoucherPageOut(serializers.Serializer):
    results = VoucherOut(many=True)
    next = serializers.URLField(allow_null=True)


class RewardClaimIn(StrictSerializer):
    reward = serializers.CharField(max_length=64)


class RewardClaimOut(VoucherOut):
    """The voucher's fields at the top level, and the member after the claim."""

    member = MemberSummaryOut()


class VoucherRedeemIn(StrictSerializer):
    store_code = serializers.CharField(max_length=32)
    receipt_id = serializers.CharField(max_length=64)


class RewardCatalogueApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[
            OpenApiParameter("member_number", str, description="The member whose claims to check."),
            OpenApiParameter(
                "market", str, description="Without a member: one market's catalogue."
            ),
        ],
        responses={200: RewardOut(many=True), **errors(NotFound)},
        operation_id="rewards_list",
    )
    def get(self, request: Request) -> Response:
        member_number = request.query_params.get("member_number")
        market_code = request.query_params.get("market")
        member = market = None
        if member_number is not None:
            member = visible_member(actor=request.user, member_number=member_number)
        elif market_code is not None:
            market = Market.objects.filter(code=market_code.upper()[:2]).first()
            if market is None or not request.user.sees_market(market.pk):
                raise NotFound("No such market.")
        rewards = rewards_catalogue(actor=request.user, member=member, market=market)
        return Response(RewardOut(rewards, many=True).data)


class RewardClaimApi(APIView):
    scopes = {"POST": "rewards:write"}

    @extend_schema(
        request=RewardClaimIn,
        operation_id="rewards_claim",
        responses={
            201: RewardClaimOut,
            **errors(MemberInactive, RewardNotAvailable, InsufficientPoints),
        },
        parameters=[idempotency_key(required=True)],
    )
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        data = parse(RewardClaimIn, request.data)

        def claim() -> tuple[int, dict[str, Any], bool]:
            body = services.reward_claim(
                actor=request.user, member=member, reward_code=data["reward"]
            )
            return status.HTTP_201_CREATED, RewardClaimOut(body).data, False

        return run_idempotent(request, required=True, action=claim)


class MemberVouchersApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(
        parameters=[OpenApiParameter("cursor", str), OpenApiParameter("page_size", int)],
        responses={200: VoucherPageOut},
        operation_id="vouchers_list",
    )
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        results, cursor = member_vouchers(
            member=member,
            cursor=request.query_params.get("cursor"),
            size=page_size(request.query_params.get("page_size")),
        )
        page = {"results": results, "next": next_link(request, cursor) if cursor else None}
        return Response(VoucherPageOut(page).data)


class VoucherDetailApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(responses={200: VoucherOut}, operation_id="vouchers_read")
    def get(self, request: Request, code: str) -> Response:
        return Response(
            VoucherOut(voucher_view(visible_voucher(actor=request.user, code=code))).data
        )


class VoucherRedeemApi(APIView):
    scopes = {"POST": "rewards:write"}

    @extend_schema(
        request=VoucherRedeemIn,
        operation_id="vouchers_redeem",
        responses={
            200: VoucherOut,
            **errors(VoucherUsed, VoucherNotValid, MemberInactive, UnknownStore),
        },
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request, code: str) -> Response:
        data = parse(VoucherRedeemIn, request.data)

        def redeem() -> tuple[int, dict[str, Any], bool]:
            body = services.voucher_redeem(
                actor=request.user,
                code=code,
                store_code=data["store_code"],
                receipt_id=data["receipt_id"],
            )
            return status.HTTP_200_OK, VoucherOut(body).data, False

        return run_idempotent(request, required=False, action=redeem)


class _ImageRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept an image; the view answers the bytes."""

    charset = None
    render_style = "binary"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return data if isinstance(data, bytes) else b""


class PngRenderer(_ImageRenderer):
    media_type, format = "image/png", "png"


class SvgRenderer(_ImageRenderer):
    media_type, format = "image/svg+xml", "svg"


class VoucherQrApi(APIView):
    """The voucher's code as a QR code, for the member's app or a print-out."""

    scopes = {"GET": "members:read"}
    kind = "png"

    def get_renderers(self) -> list[renderers.BaseRenderer]:
        image = PngRenderer() if self.kind == "png" else SvgRenderer()
        return [image, OrjsonRenderer()]

    def qr(self, request: Request, code: str) -> HttpResponse:
        voucher = visible_voucher(actor=request.user, code=code)
        qr = segno.make(code_format(voucher.code), error="m")
        out = io.BytesIO()
        if self.kind == "png":
            qr.save(out, kind="png", scale=8, border=4)
        else:
            qr.save(out, kind="svg", scale=8, border=4, xmldecl=True, svgns=True)
        response = HttpResponse(
            out.getvalue(), content_type="image/png" if self.kind == "png" else "image/svg+xml"
        )
        response["Cache-Control"] = "private, max-age=300"
        return response


class VoucherQrPngApi(VoucherQrApi):
    kind = "png"

    @extend_schema(responses={(200, "image/png"): bytes}, operation_id="vouchers_qr_png")
    def get(self, request: Request, code: str) -> HttpResponse:
        return self.qr(request, code)


class VoucherQrSvgApi(VoucherQrApi):
    kind = "svg"

    @extend_schema(responses={(200, "image/svg+xml"): str}, operation_id="vouchers_qr_svg")
    def get(self, request: Request, code: str) -> HttpResponse:
        return self.qr(request, code)
