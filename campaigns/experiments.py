"""Experiments: creation with a fixed metric and weights, assignment at
exposure (the contract's SHA-256 bucket, stored once), and results.

Results are computed as the contract says: per variant n, sum and sum of
squares of the assigned members' metric in ONE SQL statement over each
member's window [assigned_at, assigned_at + window_days), cut at now (or at
the end, for an experiment that ended); then the statistics of
`campaigns.stats.results` over those sums. When an experiment has ended
its results are stored once (`results`, `frozen_at`) and answered as they
are from then on: the `experiments_freeze` job freezes them soon after the
end, and the first read after the end does if the job has not yet.

Locks: an exposure holds the experiment's row FOR SHARE while it assigns
(exposures do not wait for each other); a change of the metric or the
variants takes it FOR UPDATE and checks there is no assignment yet, so no
member is ever assigned to a variant that is being replaced.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from campaigns import stats
from campaigns.models import Assignment, Campaign, Experiment, Variant
from campaigns.selectors import experiment_status
from campaigns.services import campaigns_forget
from club.selectors import market_by_code
from core.actors import Actor
from core.errors import (
    AlreadyExists,
    ExperimentLocked,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from core.jobs import JobResult, Progress, run_batches
from core.jobs import job as declare_job
from members.models import Member
from members.selectors import visible_member


def _market(actor: Actor, code: str) -> Any:
    market = market_by_code(code)
    if market is None or not actor.sees_market(market.pk):
        raise ValidationFailed(f"Unknown market {code}.", errors={"market": ["Unknown market."]})
    return market


def variants_check(
    market_id: int, variants: list[dict[str, Any]], experiment_id: int | None
) -> dict[str, Campaign]:
    """Variant codes unique; the campaigns they name exist in the market and
    belong to no other experiment. Answers the campaigns by code."""
    codes = [v["code"] for v in variants]
    if len(set(codes)) != len(codes):
        raise ValidationFailed(
            "Variant codes must be unique.", errors={"variants": ["Codes must be unique."]}
        )
    named = [v["campaign"] for v in variants if v.get("campaign")]
    if len(set(named)) != len(named):
        raise ValidationFailed(
            "A campaign can be the offer of one variant only.",
            errors={"variants": ["A campaign is named twice."]},
        )
    campaigns = {
        c.code: c
        for c in Campaign.objects.filter(market_id=market_id, code__in=named).select_related(
            "variant"
        )
    }
    missing = sorted(set(named) - set(campaigns))
    if missing:
        raise ValidationFailed(
            f"No campaign {', '.join(missing)} in the experiment's market.",
            errors={"variants": [f"Unknown campaigns: {', '.join(missing)}."]},
        )
    for campaign in campaigns.values():
        variant = getattr(campaign, "variant", None)
        if variant is not None and variant.experiment_id != experiment_id:
            raise ValidationFailed(
                f"Campaign {campaign.code} is already the offer of another experiment.",
                errors={"variants": [f"Campaign {campaign.code} is in another experiment."]},
            )
    return campaigns


def _variants_write(
    experiment: Experiment, variants: list[dict[str, Any]], campaigns: dict[str, Campaign]
) -> None:
    Variant.objects.filter(experiment=experiment).delete()
    Variant.objects.bulk_create(
        [
            Variant(
                experiment=experiment,
                code=v["code"],
                position=position,
                weight=v["weight"],
                campaign=campaigns.get(v.get("campaign") or ""),
            )
            for position, v in enumerate(variants)
        ]
    )


def _forget_campaigns() -> None:
    # Campaigns tied to variants change what purchases may be given.
    transaction.on_commit(campaigns_forget)
    campaigns_forget()


def experiment_create(
    *,
    actor: Actor,
    code: str,
    name: str,
    market_code: str,
    hypothesis: str,
    metric: str,
    window_days: int,
    variants: list[dict[str, Any]],
    starts_at: datetime,
    ends_at: datetime,
) -> Experiment:
    market = _market(actor, market_code)
    if ends_at <= starts_at:
        raise ValidationFailed(
            "ends_at must be after starts_at.", errors={"ends_at": ["Must be after starts_at."]}
        )
    try:
        with transaction.atomic():
            campaigns = variants_check(market.pk, variants, None)
            experiment = Experiment.objects.create(
                code=code,
                name=name,
                market=market,
                hypothesis=hypothesis,
                metric=metric,
                window_days=window_days,
                starts_at=starts_at,
                ends_at=ends_at,
            )
            _variants_write(experiment, variants, campaigns)
    except IntegrityError:
        raise AlreadyExists(
            f"An experiment {code} already exists in market {market.code}, or one of its "
            "campaigns was just tied to another."
        ) from None
    _forget_campaigns()
    return experiment


def experiment_find(*, actor: Actor, code: str, market_code: str | None = None) -> Experiment:
    found = [
        e
        for e in Experiment.objects.select_related("market").filter(code=code)[:10]
        if actor.sees_market(e.market_id) and (market_code is None or e.market.code == market_code)
    ]
    if not found:
        raise NotFound(f"No experiment {code}.")
    if len(found) > 1:
        raise ValidationFailed(
            f"Experiment {code} exists in several markets: name one with ?market=.",
            errors={"market": ["Required: the code is used in several markets."]},
        )
    return found[0]


LOCKED_FIELDS = ("metric", "variants")


def experiment_update(
    *, actor: Actor, experiment: Experiment, changes: dict[str, Any], now: datetime | None = None
) -> Experiment:
    """`name`, `hypothesis` and `ends_at` at any time (until it has ended:
    its results are then frozen); `metric` and `variants` (with their
    weights) only until the first member is assigned."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = (
            Experiment.objects.select_for_update().select_related("market").get(pk=experiment.pk)
        )
        if any(field in changes for field in LOCKED_FIELDS):
            if Assignment.objects.filter(experiment=locked).exists():
                raise ExperimentLocked(
                    f"Experiment {locked.code} has assigned members: its metric, variants and "
                    "weights are fixed."
                )
        if "ends_at" in changes:
            if experiment_status(locked, now) == "ended":
                raise InvalidState(f"Experiment {locked.code} has ended: its results are frozen.")
            if changes["ends_at"] <= locked.starts_at:
                raise ValidationFailed(
                    "ends_at must be after starts_at.",
                    errors={"ends_at": ["Must be after starts_at."]},
                )
        if "variants" in changes:
            campaigns = variants_check(locked.market_id, changes["variants"], locked.pk)
            _variants_write(locked, changes["variants"], campaigns)
        for field in ("name", "hypothesis", "ends_at", "metric"):
            if field in changes:
                setattr(locked, field, changes[field])
        locked.save()
        if experiment_status(locked, now) == "ended":
            # Ended now (ends_at moved to the past): its results freeze at once.
            _freeze(locked, now)
    if "variants" in changes:
        _forget_campaigns()
    return locked


def _share_lock(experiment_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM campaigns_experiment WHERE id = %s FOR SHARE", [experiment_id]
            )


def exposure_record(
    *,
    actor: Actor,
    experiment: Experiment,
    member_ref: dict[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Assign the member when first shown the offer: the variant of the
    contract's SHA-256 bucket, stored once (INSERT ... ON CONFLICT DO
    NOTHING, then read), so `assigned_at` never changes."""
    now = now or timezone.now()
    member: Member = visible_member(actor=actor, **member_ref)
    if member.market_id != experiment.market_id:
        raise NotFound("No such member in the experiment's market.")
    member.check_active()
    with transaction.atomic():
        _share_lock(experiment.pk)
        existing = _assignment(experiment.pk, member.pk)
        if existing is not None:
            return existing
        if experiment_status(experiment, now) != "running":
            raise InvalidState(f"Experiment {experiment.code} is not running: nobody is assigned.")
        variants = list(Variant.objects.filter(experiment=experiment).order_by("position"))
        code = stats.variant_for(
            experiment.code, member.member_number, [(v.code, v.weight) for v in variants]
        )
        chosen = next(v for v in variants if v.code == code)
        Assignment.objects.bulk_create(
            [
                Assignment(
                    experiment_id=experiment.pk,
                    member_id=member.pk,
                    variant=chosen,
                    assigned_at=now,
                    window_ends_at=now + timedelta(days=experiment.window_days),
                )
            ],
            ignore_conflicts=True,
        )
        found = _assignment(experiment.pk, member.pk)
    assert found is not None
    return found


def _assignment(experiment_id: int, member_id: int) -> dict[str, Any] | None:
    row = (
        Assignment.objects.filter(experiment_id=experiment_id, member_id=member_id)
        .values("variant__code", "assigned_at")
        .first()
    )
    if row is None:
        return None
    return {"variant": row["variant__code"], "assigned_at": row["assigned_at"]}


# --- results ---------------------------------------------------------------------

# One member's metric over the purchases of their window (a member without
# purchases counts 0). Bonus points are the purchase's campaigns' bonus rows.
_METRIC = {
    "revenue": "COALESCE(SUM(p.total - p.returned_amount), 0)",
    "purchases": "COUNT(CASE WHEN p.returned_amount < p.total THEN 1 END)",
    "points_earned": ("COALESCE(SUM(p.points_earned - p.points_reversed + COALESCE(b.net, 0)), 0)"),
    "retained": "CASE WHEN COUNT(p.id) > 0 THEN 1 ELSE 0 END",
}

_RESULTS_SQL = """
SELECT v.code, COUNT(x.value), COALESCE(SUM(x.value), 0), COALESCE(SUM(x.value * x.value), 0)
FROM campaigns_variant v
LEFT JOIN (
    SELECT a.variant_id, {metric} AS value
    FROM campaigns_assignment a
    LEFT JOIN loyalty_purchase p
      ON p.member_id = a.member_id AND NOT p.imported
     AND p.occurred_at >= a.assigned_at AND p.occurred_at < a.window_ends_at
     AND p.occurred_at < %(until)s
    {bonus_join}
    WHERE a.experiment_id = %(experiment)s
    GROUP BY a.id, a.variant_id
) x ON x.variant_id = v.id
WHERE v.experiment_id = %(experiment)s
GROUP BY v.id, v.code, v.position
ORDER BY v.position
"""

_BONUS_JOIN = """
    LEFT JOIN (
        SELECT purchase_id, SUM(points - points_reversed) AS net
        FROM campaigns_purchasebonus GROUP BY purchase_id
    ) b ON b.purchase_id = p.id
"""


def variant_sums(experiment: Experiment, until: datetime) -> list[stats.VariantSums]:
    """Per variant, in order: members, sum and sum of squares of their
    metric, in one statement."""
    sql = _RESULTS_SQL.replace("{metric}", _METRIC[experiment.metric]).replace(
        "{bonus_join}", _BONUS_JOIN if experiment.metric == "points_earned" else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"experiment": experiment.pk, "until": until})
        rows = cursor.fetchall()
    return [
        stats.VariantSums(code=code, n=int(n), sum=float(total), sum_squares=float(squares))
        for code, n, total, squares in rows
    ]


def _compute(experiment: Experiment, now: datetime) -> dict[str, Any]:
    status = experiment_status(experiment, now)
    until = min(now, experiment.ends_at)
    sums = variant_sums(experiment, until)
    weights = list(
        Variant.objects.filter(experiment=experiment)
        .order_by("position")
        .values_list("weight", flat=True)
    )
    return {
        "code": experiment.code,
        "metric": experiment.metric,
        "status": status,
        **stats.results(sums, [float(w) for w in weights]),
    }


def _freeze(experiment: Experiment, now: datetime) -> dict[str, Any]:
    """Store an ended experiment's results once (the row is locked by the caller)."""
    if experiment.results is not None:
        return experiment.results
    results = _compute(experiment, now)
    experiment.results, experiment.frozen_at = results, now
    Experiment.objects.filter(pk=experiment.pk).update(results=results, frozen_at=now)
    return results


def experiment_results(*, experiment: Experiment, now: datetime | None = None) -> dict[str, Any]:
    """The results: live while the experiment runs, frozen once it ended."""
    now = now or timezone.now()
    if experiment.results is not None:
        return experiment.results
    if experiment_status(experiment, now) != "ended":
        return _compute(experiment, now)
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        return _freeze(locked, now)


@declare_job(
    title="experiments: freeze results", schedule=crontab(minute="*/10"), unit="experiments"
)
def experiments_freeze(
    *,
    as_of: datetime,
    batch_size: int = 20,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Store the results of the experiments that have ended, once each: an
    experiment frozen already is left alone, so a second run finds nothing."""

    def batch() -> int | None:
        due = list(
            Experiment.objects.filter(results__isnull=True, ends_at__lte=as_of)
            .order_by("ends_at", "id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not due:
            return None
        for experiment_id in due:
            with transaction.atomic():
                locked = Experiment.objects.select_for_update().get(pk=experiment_id)
                _freeze(locked, as_of)
        return len(due)

    return run_batches("experiments_freeze", [batch], progress, max_batches)
