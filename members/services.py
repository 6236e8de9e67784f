"""Writes about members: enrolment, profile, consents, cards."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from club.models import Tier
from club.selectors import market_by_code, store_in_market
from core.actors import Actor
from core.errors import MemberExists, NotFound, ValidationFailed
from core.outbox import outbox_add
from members.models import Card, ConsentChange, Member
from members.numbers import member_number_for, new_card_number
from members.selectors import normalize_phone

CONSENT_FIELDS = ("marketing_email", "marketing_sms", "profiling")


def _lock_identifiers(*values: str) -> None:
    """Serialise enrolments that share an email or phone (Postgres), so two
    parallel enrolments cannot both pass the duplicate check."""
    if connection.vendor != "postgresql":
        return  # SQLite runs one write transaction at a time anyway
    with connection.cursor() as cursor:
        for value in sorted(values):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", [value])


def _existing_member(
    *, email: str | None, phone: str | None, exclude_id: int | None = None
) -> Member | None:
    match = Q()
    if email:
        match |= Q(email_lower=email.lower())
    if phone:
        match |= Q(phone=phone)
    if not match:
        return None
    qs = (
        Member.objects.annotate(email_lower=Lower("email"))
        .filter(match)
        .exclude(status=Member.Status.ERASED)
    )
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.only("member_number", "market_id").first()


def _member_exists(existing: Member, actor: Actor | None) -> MemberExists:
    """Names the member only to a client that may see it (API.md: a client
    never sees a member of another market)."""
    if actor is not None and not actor.sees_market(existing.market_id):
        return MemberExists("Email or phone already belongs to a member in another market.")
    return MemberExists(f"Email or phone already belongs to member {existing.member_number}.")


def consent_changes_record(
    *, member: Member, consents: dict[str, bool], source: str, at: Any
) -> None:
    """One history row per consent given or withdrawn."""
    ConsentChange.objects.bulk_create(
        [
            ConsentChange(
                member=member, consent=field, granted=bool(value), at=at, source=source[:64]
            )
            for field, value in consents.items()
            if field in CONSENT_FIELDS
        ]
    )


def _card_create(*, member: Member) -> Card:
    for _ in range(5):
        try:
            with transaction.atomic():
                return Card.objects.create(member=member, number=new_card_number())
        except IntegrityError:
            continue  # a random collision: draw again
    raise RuntimeError("could not draw a free card number")


def member_create(
    *,
    actor: Actor,
    market_code: str,
    email: str | None = None,
    phone: str | None = None,
    first_name: str = "",
    last_name: str = "",
    birth_date: date | None = None,
    language: str = "",
    channel: str = Member.Channel.STORE,
    store_code: str | None = None,
    consents: dict[str, bool] | None = None,
) -> Member:
    market = market_by_code(market_code)
    if market is None or not actor.sees_market(market.pk):
        raise ValidationFailed(
            f"Unknown market {market_code}.", errors={"market": ["Unknown market."]}
        )
    if not email and not phone:
        raise ValidationFailed(
            "Give an email or a phone.", errors={"email": ["Email or phone is required."]}
        )
    if phone:
        phone = normalize_phone(phone, region=market.code)
    if email:
        email = email.strip()
    store = None
    if store_code:
        store = store_in_market(market=market, store_code=store_code)
    base_tier = Tier.objects.order_by("rank").first()
    if base_tier is None:
        raise RuntimeError("no tier configured")
    consents = consents or {}
    now = timezone.now()
    with transaction.atomic():
        _lock_identifiers(*(v for v in ((email or "").lower(), phone or "") if v))
        existing = _existing_member(email=email, phone=phone)
        if existing is not None:
            raise _member_exists(existing, actor)
        member = Member.objects.create(
            market=market,
            email=email or None,
            phone=phone or None,
            first_name=first_name,
            last_name=last_name,
            birth_date=birth_date,
            language=language or market.language,
            channel=channel,
            enrolment_store=store,
            tier=base_tier,
            consents_updated_at=now if consents else None,
            **{field: bool(consents.get(field, False)) for field in CONSENT_FIELDS},
        )
        member.member_number = member_number_for(member.pk)
        Member.objects.filter(pk=member.pk).update(member_number=member.member_number)
        if consents:
            consent_changes_record(member=member, consents=consents, source=actor.name, at=now)
        _card_create(member=member)
    return member


def member_update(*, member: Member, changes: dict[str, Any], actor: Actor | None = None) -> Member:
    """Profile and consents. The view lets only those fields through."""
    member.check_active()
    changes = dict(changes)
    if "phone" in changes and changes["phone"]:
        changes["phone"] = normalize_phone(changes["phone"], region=member.market.code)
    if "email" in changes and changes["email"]:
        changes["email"] = changes["email"].strip()
    email = changes.get("email", member.email) or None
    phone = changes.get("phone", member.phone) or None
    if not email and not phone:
        raise ValidationFailed(
            "A member keeps an email or a phone.",
            errors={"email": ["Email or phone is required."]},
        )
    consents = changes.pop("consents", None) or {}
    with transaction.atomic():
        locked = Member.objects.select_for_update().get(pk=member.pk)
        locked.check_active()
        check_email = email if email and email.lower() != (locked.email or "").lower() else None
        check_phone = phone if phone and phone != locked.phone else None
        if check_email or check_phone:
            _lock_identifiers(*(v for v in ((check_email or "").lower(), check_phone or "") if v))
            existing = _existing_member(email=check_email, phone=check_phone, exclude_id=member.pk)
            if existing is not None:
                raise _member_exists(existing, actor)
        fields = {f for f, v in changes.items() if getattr(locked, f) != v}
        fields |= {f for f, v in (("email", email), ("phone", phone)) if getattr(locked, f) != v}
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.email = email
        locked.phone = phone
        changed = {
            field: bool(value)
            for field, value in consents.items()
            if bool(value) != getattr(locked, field)
        }
        for field, value in consents.items():
            setattr(locked, field, bool(value))
        if consents:
            locked.consents_updated_at = timezone.now()
        locked.save()
        fields |= set(changed)
        if fields:
            # Which fields changed, never their values: no personal data leaves.
            outbox_add(
                topic="member.updated",
                dedupe_key=f"member.updated:{locked.pk}:{uuid.uuid4().hex}",
                member_id=locked.pk,
                payload={"member_number": locked.member_number, "fields": sorted(fields)},
            )
        if changed:
            consent_changes_record(
                member=locked,
                consents=changed,
                source=actor.name if actor else "system",
                at=locked.consents_updated_at,
            )
    locked.market = member.market
    locked.tier = member.tier
    return locked


def card_issue(*, member: Member) -> Card:
    member.check_active()
    with transaction.atomic():
        return _card_create(member=member)


def card_block(*, member: Member, number: str) -> Card:
    member.check_active()
    with transaction.atomic():
        card = Card.objects.select_for_update().filter(member=member, number=number).first()
        if card is None:
            raise NotFound("No such card on this member.")
        if card.status != Card.Status.BLOCKED:
            card.status = Card.Status.BLOCKED
            card.blocked_at = timezone.now()
            card.save(update_fields=["status", "blocked_at"])
    return card
