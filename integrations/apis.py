"""Webhook subscriptions of the calling API client (scope webhooks:manage)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import AlreadyExists, NotFound
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from integrations import webhooks


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
