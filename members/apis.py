"""Member endpoints about cards: issue a new one, block a lost one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import MemberInactive
from core.http import StrictSerializer, parse
from core.idempotency import run_idempotent
from core.schema import errors, idempotency_key
from members import services
from members.models import Card
from members.selectors import visible_member


class CardOut(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=Card.Status.choices)


class CardCollectionApi(APIView):
    scopes = {"POST": "members:write"}

    @extend_schema(
        request=None,
        responses={201: CardOut, **errors(MemberInactive)},
        operation_id="cards_issue",
        parameters=[idempotency_key(required=False)],
    )
    def post(self, request: Request, member_number: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        if request.data:
            parse(StrictSerializer, request.data)

        def issue() -> tuple[int, dict[str, Any], bool]:
            card = services.card_issue(member=member)
            return status.HTTP_201_CREATED, CardOut(card).data, False

        return run_idempotent(request, required=False, action=issue)


class CardDetailApi(APIView):
    scopes = {"DELETE": "members:write"}

    @extend_schema(responses={204: None, **errors(MemberInactive)}, operation_id="cards_block")
    def delete(self, request: Request, member_number: str, card: str) -> Response:
        member = visible_member(actor=request.user, member_number=member_number)
        services.card_block(member=member, number=card)
        return Response(status=status.HTTP_204_NO_CONTENT)
