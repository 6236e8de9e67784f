"""What the club learns about its members: NPS answers, each member's
scores and the models fitted at the last `insights_refresh`."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class NpsResponse(models.Model):
    """One answer to "how likely are you to recommend us?" (0 to 10)."""

    class Touchpoint(models.TextChoices):
        STORE = "store"
        ONLINE = "online"
        SUPPORT = "support"
        APP = "app"
        EMAIL = "email"

    member = models.ForeignKey(
        "members.Member", on_delete=models.CASCADE, related_name="nps_responses", db_index=False
    )
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    touchpoint = models.CharField(max_length=8, choices=Touchpoint.choices)
    store = models.ForeignKey(
        "club.Store", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, max_length=2000)
    occurred_at = models.DateTimeField()
    # When the member answered next (ordered by occurred_at, then id), null
    # for their latest: the report's rollups count an answer as superseded
    # from that day on (insights/services.py keeps it).
    next_occurred_at = models.DateTimeField(
        null=True, blank=True, help_text="The member's next answer's time; null: the latest."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    client = models.ForeignKey(
        "core.ApiClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    class Meta:
        verbose_name = "NPS response"
        indexes = [
            # The report walks a market's period; the member's latest answer.
            models.Index(fields=["market", "occurred_at"], name="nps_market_time"),
            models.Index(fields=["member", "-occurred_at"], name="nps_member_latest"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(score__lte=10), name="nps_score_0_10"),
        ]

    @staticmethod
    def category_of(score: int) -> str:
        if score >= 9:
            return "promoter"
        if score >= 7:
            return "passive"
        return "detractor"


class NpsCount(models.Model):
    """A count of NPS answers in one cell of the report's rollups: a market,
    a grouping (`group_by`: "", touchpoint or store; `group_key` its value)
    and a category."""

    # Its unique key leads with the market: no index of its own.
    market = models.ForeignKey(
        "club.Market", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    group_by = models.CharField(max_length=10, blank=True)
    group_key = models.CharField(max_length=16, blank=True)
    category = models.CharField(max_length=9)
    day = models.DateField()
    answers = models.IntegerField()

    class Meta:
        abstract = True


class NpsDay(NpsCount):
    """How many of one market's NPS answers fell on one day (`span` "day")
    or in one month (`span` "month", `day` its 1st), market time, per
    category, in one grouping: all of them (`group_by` "", `group_key` ""),
    by touchpoint (the touchpoint) or by store (the store's id, "" without
    one). Kept by insights/services.py in each answer's transaction."""

    class Span(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    span = models.CharField(max_length=5, choices=Span.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["market", "group_by", "span", "day", "group_key", "category"],
                name="npsday_cell",
            ),
        ]


class NpsSuperseded(NpsCount):
    """How many of the answers counted in `NpsDay` were followed by the
    member's next answer, by the answer's day and the next one's
    (`next_day`). `span` says which is a day and which a month (its 1st):
    "dd", "dm", "md", "mm" (answer, next). Each superseded answer is in
    all four, so a report's period splits into whole months and the days
    at its ends and reads a few cells of each."""

    class Span(models.TextChoices):
        DAYS = "dd"
        DAY_MONTH = "dm"
        MONTH_DAY = "md"
        MONTHS = "mm"

    span = models.CharField(max_length=2, choices=Span.choices)
    next_day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["market", "group_by", "span", "day", "next_day", "group_key", "category"],
                name="npssuperseded_cell",
            ),
        ]


class MemberScore(models.Model):
    """One member's scores from the last `insights_refresh` of their market.

    A member who does not consent to profiling has no row: they are left out
    of scoring and of the models' fits.
    """

    # No foreign keys in the database (db_constraint=False): the table is
    # derived, rewritten nightly from a join with the members, and a key
    # checked per row cost the first refresh a lock on each of a million
    # members at COMMIT. Members and markets are never deleted (their rows
    # are PROTECTed by cards, accounts, purchases); the ORM still cascades
    # a member's delete here, erasure deletes the score, and a score whose
    # member is no longer profiled goes at the next refresh.
    member = models.OneToOneField(
        "members.Member",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="score",
        db_constraint=False,
    )
    # No index of its own: (market, segment) below serves the market's reads,
    # and each index costs the nightly write of a million rows.
    market = models.ForeignKey(
        "club.Market",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    as_of = models.DateField()
    # RFM: null scores for a member who never purchased (in no segment).
    recency_days = models.PositiveIntegerField(null=True)
    frequency_12m = models.PositiveIntegerField(default=0)
    monetary_12m = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    r = models.PositiveSmallIntegerField(null=True)
    f = models.PositiveSmallIntegerField(null=True)
    m = models.PositiveSmallIntegerField(null=True)
    segment = models.CharField(max_length=16, null=True)
    action = models.CharField(max_length=8, null=True)
    # The BG/NBD inputs (weeks) and what the models say of the member; null
    # for a member with no purchase on or before as_of.
    x = models.PositiveIntegerField(null=True)
    t_x = models.FloatField(null=True)
    t_cal = models.FloatField(null=True, help_text="T: weeks from the first purchase to as_of.")
    mean_repeat_value = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, help_text="Mean net value of x's transactions."
    )
    p_alive = models.FloatField(null=True)
    expected_purchases_90d = models.FloatField(null=True)
    expected_purchases_52w = models.FloatField(null=True)
    expected_spend = models.DecimalField(max_digits=14, decimal_places=2, null=True)
    clv_12m = models.DecimalField(max_digits=14, decimal_places=2, null=True)

    class Meta:
        indexes = [models.Index(fields=["market", "segment"])]


class FittedModel(models.Model):
    """The purchase (BG/NBD) and spend (Gamma-Gamma) models of one market
    as of one day: the same for every member of the market."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    as_of = models.DateField()
    members = models.PositiveIntegerField(help_text="Members the purchase model was fitted on.")
    purchase_model = models.JSONField(null=True, help_text="r, alpha, a, b, log_likelihood.")
    spend_model = models.JSONField(null=True, help_text="p, q, gamma, members, log_likelihood.")
    segments = models.JSONField(
        null=True, help_text="The segments' summary as GET /insights/segments answers it."
    )
    fitted_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "as_of"], name="fitted_model_market_day"),
        ]


class Rollup(models.Model):
    """How far `insights_rollup` has rolled up: the rows with an id at or
    below these marks (purchases and returns: created before the moment)
    are in the rolled-up tables, the others are added live by the reports.
    One row (id 1)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    entry_id = models.BigIntegerField(
        default=0, help_text="Ledger entries (and the lots of them) up to this id."
    )
    movement_id = models.BigIntegerField(default=0, help_text="Lot movements up to this id.")
    member_id = models.BigIntegerField(default=0, help_text="Members up to this id.")
    purchases_before = models.DateTimeField(
        null=True, help_text="Purchases and returns created before this moment (none: not yet)."
    )
    rolled_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="rollup_one_row")]


class LedgerDay(models.Model):
    """The points of one market's ledger entries of one kind booked on one
    day (market time), up to the rollup's mark."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    day = models.DateField()
    kind = models.CharField(max_length=16)
    points = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "day", "kind"], name="ledgerday_market_day"),
        ]


class LedgerMonth(models.Model):
    """The same per month (market time): what the report reads for the
    months before the one it ends in."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="The 1st of the month.")
    kind = models.CharField(max_length=16)
    points = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["market", "month", "kind"], name="ledgermonth_market_month"
            ),
        ]


class LotDay(models.Model):
    """The remaining points of one market's lots of one expiry day and one
    availability day: their points and their movements, up to the rollup's
    marks (a lot's remaining is its points plus its movements)."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    expires_on = models.DateField()
    available_on = models.DateField()
    points = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["market", "expires_on", "available_on"], name="lotday_market_days"
            ),
        ]


class CohortSize(models.Model):
    """How many of one market's members enrolled in one month (market time),
    among the members up to the rollup's mark."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    cohort = models.DateField(help_text="The 1st of the enrolment month.")
    members = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "cohort"], name="cohortsize_market_cohort"),
        ]


class CohortMonth(models.Model):
    """How many members of one cohort (up to the rollup's member mark) had a
    purchase not fully returned in one month, counting the purchases and
    returns created before the rollup's moment."""

    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
    cohort = models.DateField()
    month = models.DateField()
    active = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["market", "cohort", "month"], name="cohortmonth_market_months"
            ),
        ]
