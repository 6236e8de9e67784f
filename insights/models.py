from django.db import models


class MemberScore(models.Model):
    """One member's scores from the last `insights_refresh` of their market.

    A member who does not consent to profiling has no row: they are left out
    of scoring and of the models' fits.
    """

    member = models.OneToOneField(
        "members.Member", on_delete=models.CASCADE, primary_key=True, related_name="score"
    )
    market = models.ForeignKey("club.Market", on_delete=models.PROTECT, related_name="+")
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

    class Meta:
        indexes = [models.Index(fields=["market", "segment"])]
