"""The welcome journey: missions, each member's progress on them, and the
activity events that count for them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from rewards.models import Reward, Voucher, names_hint, names_valid


class Mission(models.Model):
    """A small task of the welcome journey: done within a window of days
    counted from the member's enrolment (day 0 is the day of enrolment, in
    the member's market), for points or a reward's voucher."""

    class Goal(models.TextChoices):
        PROFILE_COMPLETED = "profile_completed", "profile completed (event profile_completed)"
        FIRST_PURCHASE = "first_purchase", "a first purchase"
        SECOND_PURCHASE_WITHIN = (
            "second_purchase_within",
            "a second purchase within N days of the first",
        )
        STORE_AND_ONLINE = "store_and_online", "a purchase in a store and one online"
        CATEGORY_PURCHASE = "category_purchase", "a purchase in a category"
        SURVEY_ANSWERED = "survey_answered", "a survey answered (event survey_answered)"
        EVENT = "event", "an activity event of a type"

    MAX_WINDOW_DAY = 366

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(
        max_length=100, help_text="Shown where the member's language has no name."
    )
    names = models.JSONField(
        default=dict,
        blank=True,
        help_text='Names per language, e.g. {"sv": "Fyll i din profil", "en": "Complete your profile"}.',
    )
    description = models.TextField(blank=True)
    order = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    window_start_day = models.PositiveSmallIntegerField(
        default=0, help_text="The first day that counts, from the day of enrolment (day 0)."
    )
    window_end_day = models.PositiveSmallIntegerField(
        help_text="The last day that counts (inclusive), from the day of enrolment; at most 366."
    )
    goal = models.CharField(max_length=32, choices=Goal.choices)
    days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="second_purchase_within: the second purchase within this many days of the first.",
    )
    category = models.CharField(
        max_length=64, blank=True, help_text="category_purchase: the category."
    )
    event_type = models.CharField(max_length=64, blank=True, help_text="event: the event type.")
    reward_points = models.PositiveIntegerField(null=True, blank=True, help_text="Points, or:")
    reward = models.ForeignKey(
        Reward,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="missions",
        help_text="A voucher of this reward (no points spent).",
    )
    active = models.BooleanField(default=True)
    markets = models.ManyToManyField(
        "club.Market", blank=True, related_name="missions", help_text="None means every market."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_end_day__gte=models.F("window_start_day"))
                & Q(window_end_day__lte=366),
                name="mission_window_valid",
            ),
            models.CheckConstraint(
                condition=(Q(reward_points__gt=0) & Q(reward__isnull=True))
                | (Q(reward_points__isnull=True) & Q(reward__isnull=False)),
                name="mission_one_reward",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not names_valid(self.names):
            errors["names"] = names_hint("Fyll i din profil")
        if self.window_end_day is not None and not (
            self.window_start_day <= self.window_end_day <= self.MAX_WINDOW_DAY
        ):
            errors["window_end_day"] = f"From the start day to {self.MAX_WINDOW_DAY}."
        if (self.reward_points is None) == (self.reward_id is None):
            errors["reward_points"] = "Give points or a reward, not both."
        if self.goal == self.Goal.SECOND_PURCHASE_WITHIN and not self.days:
            errors["days"] = "Required for a second purchase within N days."
        if self.goal == self.Goal.CATEGORY_PURCHASE and not self.category:
            errors["category"] = "Required for a purchase in a category."
        if self.goal == self.Goal.EVENT and not self.event_type:
            errors["event_type"] = "Required for an activity event."
        if errors:
            raise ValidationError(errors)


class MemberMission(models.Model):
    """A member's progress on one mission, made when something first counts.
    It completes once (the unique row, and an UPDATE ... WHERE status =
    'in_progress'), and its reward is paid once, in the same transaction."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        MISSED = "missed"

    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="missions", db_index=False
    )
    mission = models.ForeignKey(Mission, on_delete=models.PROTECT, related_name="member_missions")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    progress = models.JSONField(
        default=dict, blank=True, help_text="What counted: purchases, channels, events."
    )
    current = models.PositiveSmallIntegerField(default=0)
    target = models.PositiveSmallIntegerField(default=1)
    starts_on = models.DateField()
    deadline = models.DateField(help_text="The last day that counts, in the member's market.")
    completed_at = models.DateTimeField(null=True, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)
    reward_entry = models.OneToOneField(
        "loyalty.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    voucher = models.OneToOneField(
        Voucher, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "mission"], name="member_mission_unique"),
        ]
        indexes = [
            # missions_close walks the open ones by deadline.
            models.Index(
                fields=["deadline", "id"],
                condition=Q(status="in_progress"),
                name="member_mission_open",
            ),
            models.Index(fields=["mission", "status"], name="member_mission_by_status"),
            # Completed but not yet rewarded (a voucher out of stock): retried.
            models.Index(
                fields=["completed_at"],
                condition=Q(status="completed", rewarded_at__isnull=True),
                name="member_mission_unrewarded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mission_id} of {self.member_id}: {self.status}"


class ActivityEvent(models.Model):
    """Something a member did elsewhere (profile completed, survey answered),
    posted by a client to POST /api/v1/events. Counted once: by the client's
    `event_id` when given, else by a hash of its time and properties."""

    member = models.ForeignKey(
        "members.Member", on_delete=models.PROTECT, related_name="activity_events", db_index=False
    )
    type = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    event_id = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=120)
    body_hash = models.CharField(max_length=64)
    api_client = models.ForeignKey(
        "core.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    response = models.JSONField(default=dict)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Its index also serves "this member's events" (member first).
            models.UniqueConstraint(
                fields=["member", "type", "dedupe_key"], name="activity_event_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} of {self.member_id} at {self.occurred_at:%Y-%m-%d %H:%M}"
