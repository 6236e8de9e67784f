"""The points ledger, purchases and returns as records, redemptions and tier history.

Points, and every figure that adds them up, are 64-bit: a purchase of the
contract's largest total (10^9) at a market's highest earn rate and a tier's
multiplier is ~10^15 points. A redemption is bounded at the edge
(`loyalty.services.MAX_POINTS`) and stays 32-bit.

The ledger is append-only: `LedgerEntry` and `LotMovement` rows are never
updated or deleted (a Postgres trigger refuses it). `PointsAccount` and
`Lot.remaining` are caches that `manage.py check_ledger` proves against them.
"""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q


class QualifyingMonth(models.Model):
    """A member's qualifying points (base points, before multipliers, net of
    returns) per calendar month, kept with each purchase and return. The
    rolling 12 months are the current month and the eleven before it: at
    most twelve rows, never a scan of the ledger."""

    # No index of its own: every read names the member (and month), which
    # qualifying_member_month serves; one index fewer to write per purchase.
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    month = models.DateField(help_text="The first day of the month, market time.")
    points = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "month"], name="qualifying_member_month"),
        ]


class TierChange(models.Model):
    """History: every change of a member's tier, and every renewal."""

    class Cause(models.TextChoices):
        PURCHASE = "purchase"
        EVALUATION = "evaluation"
        RENEWAL = "renewal"
        STAFF = "staff"
        IMPORT = "import"

    # No index of its own: tierchange_member (member, -changed_at) serves it.
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="tier_changes", db_index=False
    )
    from_tier = models.ForeignKey("club.Tier", on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey("club.Tier", on_delete=models.PROTECT, related_name="+")
    cause = models.CharField(max_length=12, choices=Cause.choices)
    reason = models.CharField(max_length=255, blank=True)
    qualifying_points = models.BigIntegerField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["member", "-changed_at"], name="tierchange_member")]


class PointsAccount(models.Model):
    """The member's cached figures; the ledger is the truth.

    balance may be negative: a return after the points were spent leaves a
    debt that later earnings pay back first.
    """

    member = models.OneToOneField(
        "members.Member", on_delete=models.PROTECT, related_name="account", primary_key=True
    )
    balance = models.BigIntegerField(default=0)
    pending = models.BigIntegerField(default=0)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="Closed for good (the member was erased): nothing books."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pending__gte=0), name="account_pending_gte_0"),
        ]


class Purchase(models.Model):
    id = models.UUIDField(primary_key=True)
    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="purchases")
    # No index of its own: purchase_receipt_unique (store, receipt_id) leads
    # with the store; one index fewer to write per purchase.
    store = models.ForeignKey(
        "club.Store", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    receipt_id = models.CharField(max_length=64)
    channel = models.CharField(max_length=8)
    occurred_at = models.DateTimeField()
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    qualifying_amount = models.DecimalField(max_digits=12, decimal_places=2)
    lines = models.JSONField()
    points_earned = models.BigIntegerField()
    base_points = models.BigIntegerField(help_text="Before multipliers: what tiers count.")
    returned_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    returned_qualifying_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    points_reversed = models.BigIntegerField(default=0)
    base_points_reversed = models.BigIntegerField(default=0)
    body_hash = models.CharField(max_length=64)
    response = models.JSONField()
    imported = models.BooleanField(
        default=False,
        db_default=False,
        help_text="History brought from another club: earned nothing here.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "receipt_id"], name="purchase_receipt_unique"),
            models.CheckConstraint(
                condition=Q(returned_amount__lte=F("total")), name="purchase_return_le_total"
            ),
            models.CheckConstraint(
                condition=Q(points_reversed__lte=F("points_earned")),
                name="purchase_reversed_le_earned",
            ),
        ]


class Return(models.Model):
    id = models.UUIDField(primary_key=True)
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="returns")
    store = models.ForeignKey("club.Store", on_delete=models.PROTECT, related_name="+")
    receipt_id = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    total = models.DecimalField(max_digits=12, decimal_places=2)
    lines = models.JSONField()
    points_reversed = models.BigIntegerField()
    body_hash = models.CharField(max_length=64)
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "receipt_id"], name="return_receipt_unique"),
        ]


class Redemption(models.Model):
    class Status(models.TextChoices):
        HELD = "held"
        CAPTURED = "captured"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True)
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="redemptions"
    )
    store = models.ForeignKey("club.Store", on_delete=models.PROTECT, related_name="+")
    points = models.PositiveIntegerField()
    value = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    reference = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="held"), name="redemption_held_expiry"
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(points__gt=0), name="redemption_points_gt_0"),
        ]


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        EARN = "earn"
        BONUS = "bonus"
        REDEEM = "redeem"
        REDEEM_CANCEL = "redeem_cancel"
        RETURN = "return"
        EXPIRE = "expire"
        ADJUST = "adjust"

    # Indexes here are few on purpose: the expiry job inserts a million
    # entries. (member, -id) serves the member's ledger; the references are
    # indexed only where they are set.
    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    points = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    reference = models.CharField(max_length=128, blank=True)
    expires_on = models.DateField(null=True, blank=True)
    reason = models.CharField(max_length=255, blank=True)
    purchase = models.ForeignKey(
        Purchase, null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    return_record = models.ForeignKey(
        Return, null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    redemption = models.ForeignKey(
        Redemption, null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    api_client = models.ForeignKey(
        "core.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["member", "-id"], name="entry_member_newest"),
            models.Index(
                fields=["purchase"], condition=Q(purchase__isnull=False), name="entry_purchase"
            ),
            models.Index(
                fields=["return_record"],
                condition=Q(return_record__isnull=False),
                name="entry_return",
            ),
            models.Index(
                fields=["redemption"],
                condition=Q(redemption__isnull=False),
                name="entry_redemption",
            ),
        ]
        triggers = [
            pgtrigger.Protect(
                name="ledger_entry_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"


class Lot(models.Model):
    """Points earned together, spent first-expiring-first.

    `remaining` is a cache: points plus the sum of the lot's movements.
    A lot is pending until `matured`; the ageing job flips it.
    """

    member = models.ForeignKey("members.Member", on_delete=models.PROTECT, related_name="lots")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="lot")
    points = models.PositiveBigIntegerField()
    remaining = models.PositiveBigIntegerField()
    available_on = models.DateField()
    expires_on = models.DateField()
    matured = models.BooleanField()
    purchase = models.ForeignKey(
        Purchase,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lots",
        db_index=False,
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["purchase"], condition=Q(purchase__isnull=False), name="lot_purchase"
            ),
            # FIFO spending and the "expiring" figure: a member's open lots by expiry.
            models.Index(
                fields=["member", "expires_on"],
                condition=Q(remaining__gt=0),
                name="lot_open_by_expiry",
            ),
            # The ageing jobs walk these in (date, id) order.
            models.Index(
                fields=["available_on", "id"],
                condition=Q(matured=False),
                name="lot_pending_by_date",
            ),
            models.Index(
                fields=["expires_on", "id"], condition=Q(remaining__gt=0), name="lot_open_expiry"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__lte=F("points")), name="lot_remaining_le_points"
            ),
        ]


class LotMovement(models.Model):
    """A change of a lot's remaining points: spent, given back, expired, or
    used to pay back a debt when the lot matured (the only kind with no entry)."""

    class Kind(models.TextChoices):
        SPEND = "spend"
        RESTORE = "restore"
        DEBT = "debt"

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="movements")
    entry = models.ForeignKey(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="movements"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    points = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        triggers = [
            pgtrigger.Protect(
                name="lot_movement_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]
