"""The integrations' calls: a member's privacy (consent history, the export
of everything the club holds on them, erasure: integrations/privacy.py) and
the calling client's webhook subscriptions (integrations/webhooks.py)."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import AlreadyExists, NotFound
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from integrations import webhooks
from integrations.privacy import member_consents, member_erase, member_export_chunks
from members.models import Member
from members.selectors import visible_member


class ConsentStateOut(serializers.Serializer):
    marketing_email = serializers.BooleanField()
    marketing_sms = serializers.BooleanField()
    profiling = serializers.BooleanField()


class ConsentChangeOut(serializers.Serializer):
    consent = serializers.ChoiceField(choices=["marketing_email", "marketing_sms", "profiling"])
    granted = serializers.BooleanField()
    at = serializers.DateTimeField()
    source = serializers.CharField(
        help_text="The API client's name, the staff user's username, or `import`."
    )


class ConsentHistoryOut(serializers.Serializer):
    current = ConsentStateOut()
    history = ConsentChangeOut(many=True, help_text="Newest first.")


def _records(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.DictField(), help_text=help_text)


class ExportOut(serializers.Serializer):
    member = serializers.DictField(help_text="The member object, as GET /members/{n} answers it.")
    cards = _records("Every card, active or blocked.")
    consents = ConsentHistoryOut()
    tier_history = _records("Every change of tier.")
    ledger = _records("Every entry of the points ledger, oldest first.")
    purchases = _records("Every purchase, with its lines.")
    returns = _records("Every return.")
    redemptions = _records("Every redemption of points.")
    vouchers = _records("Every voucher.")
    benefit_uses = _records("Every use of a benefit.")
    missions = _records("The member's missions and their progress.")
    events = _records("The activity events recorded for the member.")
    surveys = _records("Survey answers (none in this version).")
    insights = serializers.DictField(
        allow_null=True, help_text="Scores about the member (null in this version)."
    )
    exported_at = serializers.DateTimeField()


class ErasedOut(serializers.Serializer):
    member_number = serializers.CharField()
    status = serializers.ChoiceField(choices=[Member.Status.ERASED])
    erased_at = serializers.DateTimeField()


class MemberConsentsApi(APIView):
    scopes = {"GET": "members:read"}

    @extend_schema(responses={200: ConsentHistoryOut}, operation_id="members_consents")
    def get(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        return Response(ConsentHistoryOut(member_consents(member=member)).data)


class MemberExportApi(APIView):
    scopes = {"GET": "privacy"}

    @extend_schema(
        responses={200: OpenApiResponse(ExportOut, description="Streamed as it is read.")},
        operation_id="members_export",
    )
    def get(self, request: Request, member_number: str) -> StreamingHttpResponse:
        member = visible_member(actor=request.user, member_number=member_number)
        chunks = (chunk.encode() for chunk in member_export_chunks(member=member))
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="member-{member_number}.json"'
        return response


class MemberEraseApi(APIView):
    scopes = {"POST": "privacy"}

    @extend_schema(
        request=None,
        responses={200: ErasedOut},
        operation_id="members_erase",
        parameters=[idempotency_key(required=True)],
    )
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        if request.data:
            parse(StrictSerializer, request.data)

        def erase() -> tuple[int, dict[str, Any], bool]:
            body = member_erase(member=member, actor=request.user)
            return 200, ErasedOut(body).data, False

        return run_idempotent(request, required=True, action=erase)


# --- webhooks ------------------------------------------------------------


class WebhookIn(StrictSerializer):
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(child=serializers.CharField(max_length=64), max_length=50)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


class WebhookOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class WebhookCreatedOut(WebhookOut):
    secret = serializers.CharField(help_text="whsec_ and base64: shown only in this answer.")


class WebhookCollectionApi(APIView):
    scopes = {"GET": "webhooks:manage", "POST": "webhooks:manage"}

    @extend_schema(
        request=WebhookIn,
        responses={201: WebhookCreatedOut, **errors(AlreadyExists)},
        operation_id="webhooks_create",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request) -> Response:
        data = parse(WebhookIn, request.data)

        def create() -> tuple[int, dict[str, Any], bool]:
            webhook = webhooks.webhook_create(
                client=request.user,
                url=data["url"],
                events=data["events"],
                description=data.get("description", ""),
            )
            return status.HTTP_201_CREATED, WebhookCreatedOut(webhook).data, False

        # A retry with the same key gets the first answer, secret included:
        # the answer that was lost is the only one that shows it.
        return run_idempotent(request, required=False, action=create)

    @extend_schema(responses={200: WebhookOut(many=True)}, operation_id="webhooks_list")
    def get(self, request: Request) -> Response:
        return Response(WebhookOut(webhooks.webhooks_of(client=request.user), many=True).data)


class WebhookDetailApi(APIView):
    scopes = {"DELETE": "webhooks:manage"}

    @extend_schema(responses={204: None, **errors(NotFound)}, operation_id="webhooks_delete")
    def delete(self, request: Request, webhook_id: int) -> Response:
        webhooks.webhook_delete(client=request.user, webhook_id=webhook_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
