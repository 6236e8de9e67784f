"""Members, their cards and consents."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from core.errors import MemberInactive


class Member(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        CLOSED = "closed"
        ERASED = "erased"

    class Channel(models.TextChoices):
        STORE = "store"
        ONLINE = "online"
        APP = "app"
        STAFF = "staff"

    member_number = models.CharField(max_length=10, unique=True, null=True, blank=True)
    external_id = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        help_text="The member's id in the club it was imported from (unique per market).",
    )
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="members")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Neither is unique in the database: the merged national clubs brought
    # duplicates along. Enrolment refuses new ones; lookups answer
    # multiple_matches where old ones remain.
    email = models.EmailField(max_length=254, null=True, blank=True)
    phone = models.CharField(max_length=16, null=True, blank=True, help_text="E.164")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    language = models.CharField(max_length=8, blank=True)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.STORE)
    enrolment_store = models.ForeignKey(
        "club.Store",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # member_enrolment_store: only the members who have one
    )
    enrolled_at = models.DateTimeField(auto_now_add=True)
    marketing_email = models.BooleanField(default=False)
    marketing_sms = models.BooleanField(default=False)
    profiling = models.BooleanField(default=False)
    consents_updated_at = models.DateTimeField(null=True, blank=True)
    tier = models.ForeignKey("club.Tier", on_delete=models.PROTECT, related_name="members")
    tier_valid_until = models.DateField(null=True, blank=True)
    tier_override_until = models.DateField(
        null=True, blank=True, help_text="Set by staff: the tier is kept as set until this day."
    )
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # What staff may do to a member beyond viewing and editing the
        # profile, each its own permission (backoffice's member admin checks
        # them; backoffice/staff.py gives them to the groups).
        permissions = [
            ("export_member", "Can export a member's data"),
            ("erase_member", "Can erase a member"),
            ("adjust_points", "Can adjust a member's points (up to SUPPORT_ADJUST_LIMIT)"),
            ("adjust_points_unlimited", "Can adjust points beyond SUPPORT_ADJUST_LIMIT"),
            ("override_tier", "Can override a member's tier"),
        ]
        indexes = [
            models.Index(Lower("email"), name="member_email_ci"),
            # The tier evaluation walks the members whose validity ran out.
            models.Index(
                fields=["tier_valid_until", "id"],
                condition=Q(tier_valid_until__isnull=False),
                name="member_tier_validity",
            ),
            models.Index(fields=["phone"], name="member_phone"),
            # A store's members (its deletion's check): imported members and
            # those enrolled online have none, and write no entry here.
            models.Index(
                fields=["enrolment_store"],
                condition=Q(enrolment_store__isnull=False),
                name="member_enrolment_store",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(email__isnull=False) | Q(phone__isnull=False) | Q(status="erased"),
                name="member_email_or_phone",
            ),
            # external_id first: the index also serves the admin's search by it.
            models.UniqueConstraint(
                fields=["external_id", "market"],
                condition=Q(external_id__isnull=False),
                name="member_market_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.member_number or f"member #{self.pk}"

    def check_active(self) -> None:
        """Every write about a member needs an active one (not suspended,
        closed or erased)."""
        if self.status != self.Status.ACTIVE:
            raise MemberInactive(f"Member {self.member_number} is {self.status}.")


class Card(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        BLOCKED = "blocked"

    number = models.CharField(max_length=19, unique=True)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="cards")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    issued_at = models.DateTimeField(auto_now_add=True)
    blocked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.number


class ConsentChange(models.Model):
    """History: every change of a member's consent, and where it came from
    (enrolment, the member's profile, staff, an import)."""

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="consent_changes", db_index=False
    )
    consent = models.CharField(max_length=16)
    granted = models.BooleanField()
    at = models.DateTimeField()
    source = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["member", "-at"], name="consentchange_member")]
