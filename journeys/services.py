"""The welcome journey: missions a new member completes within a window of
days counted from enrolment, by purchases and by activity events, for
points or a reward's voucher.

How progress is kept
--------------------
A `MemberMission` row is made the first time something counts for the
member and the mission. Its `progress` lists what counted (purchases with
their channel and day, events), and `current` / `target` sum it up. It is
written in the same transaction as the purchase, return or event that
changes it, under the member's account lock (the lock order of
loyalty/ledger.py: the account first), so the writers of one member's
missions take turns.

Windows are days in the member's market: day 0 is the day of enrolment, a
mission counts what *occurred* (the receipt's or the event's time) from
`window_start_day` through `window_end_day`, both included. What occurred
in the window counts even when it is posted a little later (a till that
was offline), unless `missions_close` has already marked the mission missed.

Rules (decided here, tested in tests/rewards/test_journey_*):
- A purchase counts when it has a qualifying line (a category the market
  does not exclude, with an amount); for `category_purchase`, a qualifying
  line in the mission's category.
- `second_purchase_within` (N days): counted purchases on two days of the
  window at most N days apart (local dates; two receipts of one day are one
  visit). The first and the second, or a later pair: a member who missed
  the first N days still has the rest of the window.
- A return takes a purchase out of the missions still in progress once it
  no longer has what made it count (fully returned; for a category
  mission, all lines of that category returned). A return never completes
  a mission.
- A mission completes once and pays once: the unique (member, mission) row,
  `UPDATE ... WHERE status = 'in_progress'` to complete it, and
  `UPDATE ... WHERE rewarded_at IS NULL` before the reward is paid. Once
  completed it stays completed and its reward stays paid, even if the
  purchase that completed it is returned later: the ledger is append-only,
  a reward is a thank-you for the visit, and each mission pays a member at
  most once, so there is little to game.
- A voucher reward that cannot be issued (out of stock) leaves the mission
  completed and unrewarded; it never fails the purchase or event.
  `missions_close` retries it.

Performance: purchases are the hot path. `journey_on_purchase` answers
without a query for a member outside the journey: it compares the member's
`enrolled_at` with the longest active window, read from a per-process
snapshot of the active missions refreshed every few seconds. Inside the
window it reads the member's mission rows (one query) and writes the ones
that changed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from celery.schedules import crontab
from django.conf import settings
from django.db import transaction
from django.db.models import Case, JSONField, Q, Value, When
from django.utils import timezone

from club.dates import local_date, market_days, occurred_at_check
from club.models import Market
from core.actors import Actor
from core.errors import DomainError, IdempotencyKeyReused
from core.jobs import Batch, JobResult, Keyset, Progress, job, run_batches
from core.outbox import outbox_add
from journeys.models import ActivityEvent, MemberMission, Mission
from loyalty.ledger import Book, account_lock
from loyalty.lifecycle import BATCH
from loyalty.services import points_bonus
from members.models import Member
from members.selectors import visible_member
from rewards.models import Reward
from rewards.selectors import localized_name
from rewards.services import voucher_issue

logger = logging.getLogger(__name__)

SNAPSHOT_TTL = 5.0  # seconds: how long a staff edit of missions may take to reach purchases
# Local dates and UTC instants differ by at most a day; the quick test that
# needs no query leaves this much room, the exact test uses local dates.
_SLACK = timedelta(days=2)

G = Mission.Goal
PURCHASE_GOALS = frozenset(
    {G.FIRST_PURCHASE, G.SECOND_PURCHASE_WITHIN, G.STORE_AND_ONLINE, G.CATEGORY_PURCHASE}
)
EVENT_GOALS = frozenset({G.PROFILE_COMPLETED, G.SURVEY_ANSWERED, G.EVENT})
CHANNELS = ("store", "online")
MAX_KEPT = 100  # purchases or events kept in one mission's progress


def journey_enabled() -> bool:
    """Settings may switch the journey's counting off (LOJAL_JOURNEY_ENABLED)."""
    return getattr(settings, "LOJAL_JOURNEY_ENABLED", True)


# --- the snapshot of active missions --------------------------------------


@dataclass(frozen=True)
class MissionSpec:
    id: int
    code: str
    name: str
    goal: str
    start_day: int
    end_day: int
    days: int | None
    category: str
    event_type: str
    market_ids: frozenset[int]  # empty: every market
    reward_points: int | None
    reward_id: int | None

    def for_market(self, market_id: int) -> bool:
        return not self.market_ids or market_id in self.market_ids

    def covers(self, day: int) -> bool:
        return self.start_day <= day <= self.end_day

    def counts_event(self, event_type: str) -> bool:
        if self.goal == G.PROFILE_COMPLETED:
            return event_type == "profile_completed"
        if self.goal == G.SURVEY_ANSWERED:
            return event_type == "survey_answered"
        return self.goal == G.EVENT and event_type == self.event_type


@dataclass(frozen=True)
class JourneySnapshot:
    missions: tuple[MissionSpec, ...]
    max_end_day: int | None  # None: no active mission
    loaded_at: float

    def by_id(self, mission_id: int) -> MissionSpec | None:
        return next((m for m in self.missions if m.id == mission_id), None)


def _spec(mission: Mission, market_ids: frozenset[int]) -> MissionSpec:
    return MissionSpec(
        id=mission.pk,
        code=mission.code,
        name=mission.name,
        goal=mission.goal,
        start_day=mission.window_start_day,
        end_day=mission.window_end_day,
        days=mission.days,
        category=mission.category,
        event_type=mission.event_type,
        market_ids=market_ids,
        reward_points=mission.reward_points,
        reward_id=mission.reward_id,
    )


def journey_load() -> JourneySnapshot:
    """The active missions, read from the database now (two queries)."""
    missions = list(Mission.objects.filter(active=True).order_by("order", "code"))
    markets: dict[int, set[int]] = {}
    for mission_id, market_id in Mission.markets.through.objects.filter(
        mission_id__in=[m.pk for m in missions]
    ).values_list("mission_id", "market_id"):
        markets.setdefault(mission_id, set()).add(market_id)
    specs = tuple(_spec(m, frozenset(markets.get(m.pk, ()))) for m in missions)
    return JourneySnapshot(
        missions=specs,
        max_end_day=max((s.end_day for s in specs), default=None),
        loaded_at=time.monotonic(),
    )


_cached: JourneySnapshot | None = None
_lock = threading.Lock()


def journey_snapshot() -> JourneySnapshot:
    """This process's snapshot of the active missions, at most SNAPSHOT_TTL old."""
    global _cached
    snapshot = _cached
    if snapshot is None or time.monotonic() - snapshot.loaded_at > SNAPSHOT_TTL:
        with _lock:
            snapshot = _cached
            if snapshot is None or time.monotonic() - snapshot.loaded_at > SNAPSHOT_TTL:
                snapshot = _cached = journey_load()
    return snapshot


def journey_forget() -> None:
    """Drop this process's snapshot (after a staff edit, in tests)."""
    global _cached
    _cached = None


def _outside(snapshot: JourneySnapshot, member: Member, occurred_at: datetime) -> bool:
    """True when no active mission's window can hold `occurred_at`: no query."""
    if snapshot.max_end_day is None:
        return True
    enrolled = member.enrolled_at
    return (
        occurred_at < enrolled - _SLACK
        or occurred_at > enrolled + timedelta(days=snapshot.max_end_day) + _SLACK
    )


def _day(market: Market, member: Member, occurred_at: datetime) -> int:
    """The day of the journey `occurred_at` falls on: 0 is the day of enrolment."""
    return (local_date(market, occurred_at) - local_date(market, member.enrolled_at)).days


# --- measuring progress ------------------------------------------------------


def target_for(goal: str) -> int:
    return 2 if goal in (G.SECOND_PURCHASE_WITHIN, G.STORE_AND_ONLINE) else 1


def measure(goal: str, days: int | None, progress: dict[str, Any]) -> int:
    """How far `progress` goes towards the goal: 0 .. target_for(goal)."""
    purchases = progress.get("purchases") or []
    if goal in (G.FIRST_PURCHASE, G.CATEGORY_PURCHASE):
        return min(len(purchases), 1)
    if goal == G.SECOND_PURCHASE_WITHIN:
        # Days with a purchase, in order: a later day within N days of an earlier one.
        ons = sorted({date.fromisoformat(p["on"]) for p in purchases})
        if any((later - earlier).days <= (days or 0) for earlier, later in zip(ons, ons[1:])):
            return 2
        return min(len(ons), 1)
    if goal == G.STORE_AND_ONLINE:
        return len({p["channel"] for p in purchases} & set(CHANNELS))
    return min(len(progress.get("events") or []), 1)


# --- writing progress, completing, paying -------------------------------------

Change = Callable[[MissionSpec, dict[str, Any]], bool]


def _advance(
    *, member: Member, market: Market, specs: list[MissionSpec], change: Change, now: datetime
) -> list[tuple[MissionSpec, int]]:
    """Apply `change` to the progress of each of `specs` (it edits the dict
    and answers whether it changed anything); write what changed; answer
    the missions this completed, with their row ids. Under the account lock."""
    rows = {
        row.mission_id: row
        for row in MemberMission.objects.filter(
            member_id=member.pk, mission_id__in=[s.id for s in specs]
        )
    }
    enrol_day = local_date(market, member.enrolled_at)
    new_rows: list[tuple[MissionSpec, MemberMission]] = []
    completed: list[tuple[MissionSpec, int]] = []
    moved: list[tuple[int, dict[str, Any], int]] = []
    for spec in specs:
        row = rows.get(spec.id)
        if row is not None and row.status != MemberMission.Status.IN_PROGRESS:
            continue  # completed stays completed; missed stays missed
        progress = dict(row.progress) if row is not None else {}
        if not change(spec, progress):
            continue
        target = target_for(spec.goal)
        current = measure(spec.goal, spec.days, progress)
        done = current >= target
        if row is None:
            new_rows.append(
                (
                    spec,
                    MemberMission(
                        member_id=member.pk,
                        mission_id=spec.id,
                        progress=progress,
                        current=current,
                        target=target,
                        starts_on=enrol_day + timedelta(days=spec.start_day),
                        deadline=enrol_day + timedelta(days=spec.end_day),
                        status=MemberMission.Status.COMPLETED
                        if done
                        else MemberMission.Status.IN_PROGRESS,
                        completed_at=now if done else None,
                    ),
                )
            )
            continue
        if not done:
            moved.append((row.pk, progress, current))
            continue
        if MemberMission.objects.filter(pk=row.pk, status=MemberMission.Status.IN_PROGRESS).update(
            progress=progress,
            current=current,
            target=target,
            updated_at=now,
            status=MemberMission.Status.COMPLETED,
            completed_at=now,
        ):
            completed.append((spec, row.pk))
    if moved:
        # The rows that progressed without completing, in one statement.
        MemberMission.objects.filter(
            pk__in=[pk for pk, _, _ in moved], status=MemberMission.Status.IN_PROGRESS
        ).update(
            progress=Case(
                *(
                    When(pk=pk, then=Value(progress, output_field=JSONField()))
                    for pk, progress, _ in moved
                )
            ),
            current=Case(*(When(pk=pk, then=Value(current)) for pk, _, current in moved)),
            updated_at=now,
        )
    if new_rows:
        # The unique (member, mission) row: a second writer could only fail here.
        made = MemberMission.objects.bulk_create([row for _, row in new_rows])
        completed.extend(
            (spec, row.pk)
            for (spec, _), row in zip(new_rows, made)
            if row.status == MemberMission.Status.COMPLETED
        )
    return completed


def mission_reward_pay(*, member: Member, spec: MissionSpec, row_id: int, now: datetime) -> bool:
    """Pay a completed mission's reward, once: the row is claimed with
    `rewarded_at IS NULL` first. Answers whether points were paid. A voucher
    that cannot be issued leaves the row unrewarded (retried by
    missions_close) and never fails the caller."""
    with transaction.atomic():  # a savepoint: a refused voucher undoes the claim
        claimed = MemberMission.objects.filter(
            pk=row_id, status=MemberMission.Status.COMPLETED, rewarded_at__isnull=True
        ).update(rewarded_at=now)
        if not claimed:
            return False
        try:
            with transaction.atomic():
                if spec.reward_points:
                    entry = points_bonus(
                        member=member,
                        points=spec.reward_points,
                        reason=f"Mission: {spec.name}"[:255],
                        reference=f"mission:{spec.code}",
                        now=now,
                    )
                    MemberMission.objects.filter(pk=row_id).update(reward_entry=entry)
                    reward = {"points": spec.reward_points}
                else:
                    voucher = voucher_issue(
                        member=member,
                        reward=Reward.objects.get(pk=spec.reward_id),
                        source="mission",
                        dedupe_key=f"mission:{row_id}",
                        now=now,
                    )
                    MemberMission.objects.filter(pk=row_id).update(voucher=voucher)
                    reward = {"reward": voucher.reward.code}
        except DomainError as exc:
            logger.warning(
                "mission %s: reward not issued for member %s: %s", spec.code, member.pk, exc.detail
            )
            MemberMission.objects.filter(pk=row_id).update(rewarded_at=None)
            return False
    outbox_add(
        topic="mission.completed",
        dedupe_key=f"mission.completed:{row_id}",
        member_id=member.pk,
        payload={
            "member_number": member.member_number,
            "mission": spec.code,
            "reward": reward,
            "completed_at": now.isoformat(),
        },
    )
    return bool(spec.reward_points)


def _complete(
    member: Member, completed: list[tuple[MissionSpec, int]], now: datetime, book: Book | None
) -> list[str]:
    paid = False
    for spec, row_id in completed:
        paid = mission_reward_pay(member=member, spec=spec, row_id=row_id, now=now) or paid
    if paid and book is not None:
        # The caller answers with the member's points: bring its book up to date.
        fresh = Book.open(account_lock(member.pk))
        book.account.balance, book.account.pending = fresh.account.balance, fresh.account.pending
        book.lots = fresh.lots
    return [spec.code for spec, _ in completed]


# --- the hooks: purchases, returns, events ------------------------------------


def journey_on_purchase(
    *,
    member: Member,
    purchase: Any,
    channel: str,
    categories: set[str],
    occurred_at: datetime,
    now: datetime | None = None,
    book: Book | None = None,
) -> list[str]:
    """A purchase was booked: count it for the member's missions. Called in
    the purchase's transaction, under the account lock; `categories` are
    those of the purchase's qualifying lines (empty: it does not count).
    `book`, when given, is the caller's book: it is brought up to date when
    a reward pays points, so that the caller's answer shows them. Answers
    the codes of the missions it completed."""
    if not categories or not journey_enabled():
        return []
    snapshot = journey_snapshot()
    if _outside(snapshot, member, occurred_at):
        return []
    market = member.market
    day = _day(market, member, occurred_at)
    specs = [
        s
        for s in snapshot.missions
        if s.goal in PURCHASE_GOALS
        and s.for_market(member.market_id)
        and s.covers(day)
        and (s.goal != G.CATEGORY_PURCHASE or s.category in categories)
    ]
    if not specs:
        return []
    now = now or timezone.now()
    entry = {
        "id": str(purchase),
        "at": occurred_at.isoformat(),
        "on": local_date(market, occurred_at).isoformat(),
        "channel": channel,
    }

    def add(spec: MissionSpec, progress: dict[str, Any]) -> bool:
        # Every counted purchase is kept, not only those that moved the
        # figure: if one is returned, another may still carry the progress.
        purchases = list(progress.get("purchases") or [])
        if len(purchases) >= MAX_KEPT or any(p["id"] == entry["id"] for p in purchases):
            return False
        progress["purchases"] = [*purchases, entry]
        return True

    completed = _advance(member=member, market=market, specs=specs, change=add, now=now)
    return _complete(member, completed, now, book)


def journey_on_return(
    *,
    member: Member,
    purchase: Any,
    occurred_at: datetime,
    kept_categories: set[str],
    now: datetime | None = None,
) -> None:
    """A return was booked against `purchase` (which occurred at
    `occurred_at`): missions still in progress no longer count it once it
    has nothing left that made it count. `kept_categories` are the
    categories of its qualifying lines not fully returned. Called in the
    return's transaction, under the account lock."""
    if not journey_enabled():
        return
    if _outside(journey_snapshot(), member, occurred_at):
        return  # it never counted
    key = str(purchase)
    rows = list(
        MemberMission.objects.filter(
            member_id=member.pk, status=MemberMission.Status.IN_PROGRESS
        ).select_related("mission")
    )
    now = now or timezone.now()
    for row in rows:
        purchases = (row.progress or {}).get("purchases") or []
        if not any(p["id"] == key for p in purchases):
            continue
        mission = row.mission
        counts = bool(kept_categories) and (
            mission.goal != G.CATEGORY_PURCHASE or mission.category in kept_categories
        )
        if counts:
            continue
        progress = dict(row.progress)
        progress["purchases"] = [p for p in purchases if p["id"] != key]
        current = min(measure(mission.goal, mission.days, progress), row.target - 1)
        MemberMission.objects.filter(pk=row.pk, status=MemberMission.Status.IN_PROGRESS).update(
            progress=progress, current=max(current, 0), updated_at=now
        )


def journey_on_event(
    *,
    member: Member,
    event_id: int,
    event_type: str,
    occurred_at: datetime,
    now: datetime | None = None,
) -> list[str]:
    """An activity event was recorded: count it for the member's missions.
    Called in the event's transaction, under the account lock. Answers the
    codes of the missions it completed."""
    if not journey_enabled():
        return []
    snapshot = journey_snapshot()
    if _outside(snapshot, member, occurred_at):
        return []
    market = member.market
    day = _day(market, member, occurred_at)
    specs = [
        s
        for s in snapshot.missions
        if s.goal in EVENT_GOALS
        and s.for_market(member.market_id)
        and s.covers(day)
        and s.counts_event(event_type)
    ]
    if not specs:
        return []
    now = now or timezone.now()

    def add(spec: MissionSpec, progress: dict[str, Any]) -> bool:
        events = list(progress.get("events") or [])
        if len(events) >= MAX_KEPT or event_id in events:
            return False
        progress["events"] = [*events, event_id]
        return True

    completed = _advance(member=member, market=market, specs=specs, change=add, now=now)
    return _complete(member, completed, now, None)


# --- activity events ---------------------------------------------------------


def _event_hash(event_type: str, occurred_at: datetime, properties: dict[str, Any]) -> str:
    return hashlib.sha256(
        orjson.dumps(
            {"type": event_type, "occurred_at": occurred_at.isoformat(), "properties": properties},
            option=orjson.OPT_SORT_KEYS,
            default=str,
        )
    ).hexdigest()


def event_record(
    *,
    actor: Actor,
    member_ref: dict[str, str],
    event_type: str,
    occurred_at: datetime,
    properties: dict[str, Any] | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record what a member did (profile completed, survey answered, ...)
    and count it for their missions, in one transaction. Counted once: a
    client's `event_id` names the event (the same id again replays the
    first answer; with another time or properties it is refused); without
    one, the same type, time and properties are the same event. Answers
    (body, replayed)."""
    now = now or timezone.now()
    properties = properties or {}
    member = visible_member(
        actor=actor, card=member_ref.get("card"), member_number=member_ref.get("member_number")
    )
    member.check_active()
    occurred_at_check(occurred_at, now)
    body_hash = _event_hash(event_type, occurred_at, properties)
    dedupe_key = f"id:{actor.api_client_id or 0}:{event_id}" if event_id else f"hash:{body_hash}"
    with transaction.atomic():
        # The account first (the lock order of loyalty/ledger.py): the
        # member's purchases and events take turns, and a retry racing its
        # first call waits for it and then finds it.
        account_lock(member.pk)
        existing = (
            ActivityEvent.objects.filter(
                member_id=member.pk, type=event_type, dedupe_key=dedupe_key
            )
            .values("body_hash", "response")
            .first()
        )
        if existing is not None:
            if existing["body_hash"] != body_hash:
                raise IdempotencyKeyReused(
                    f"event_id {event_id} was recorded with another time or properties."
                )
            return existing["response"], True
        event = ActivityEvent.objects.create(
            member_id=member.pk,
            type=event_type,
            occurred_at=occurred_at,
            properties=properties,
            event_id=event_id or "",
            dedupe_key=dedupe_key,
            body_hash=body_hash,
            api_client_id=actor.api_client_id,
        )
        completed = journey_on_event(
            member=member,
            event_id=event.pk,
            event_type=event_type,
            occurred_at=occurred_at,
            now=now,
        )
        body = {
            "id": event.pk,
            "event_id": event_id or None,
            "member_number": member.member_number,
            "type": event_type,
            "occurred_at": occurred_at.isoformat(),
            "properties": properties,
            "missions_completed": completed,
        }
        ActivityEvent.objects.filter(pk=event.pk).update(response=body)
    return body, False


# --- reads ---------------------------------------------------------------------


def _reward_view(points: int | None, reward: Reward | None) -> dict[str, Any]:
    if points:
        return {"points": points}
    return {"reward": reward.code if reward is not None else None}


def member_missions(*, member: Member, now: datetime | None = None) -> list[dict[str, Any]]:
    """The member's welcome journey: every active mission of the member's
    market that was on offer while its window was open, and every mission
    the member has progress on, with status (upcoming, in_progress,
    completed, missed), progress, window and reward."""
    now = now or timezone.now()
    market = member.market
    today = local_date(market, now)
    enrol_day = local_date(market, member.enrolled_at)
    rows = {row.mission_id: row for row in MemberMission.objects.filter(member_id=member.pk)}
    missions = (
        Mission.objects.filter(Q(active=True) | Q(pk__in=list(rows)))
        .select_related("reward")
        .prefetch_related("markets")
        .order_by("order", "code")
    )
    out = []
    for mission in missions:
        row = rows.get(mission.pk)
        if row is None:
            market_ids = {m.pk for m in mission.markets.all()}
            if market_ids and member.market_id not in market_ids:
                continue
            starts_on = enrol_day + timedelta(days=mission.window_start_day)
            deadline = enrol_day + timedelta(days=mission.window_end_day)
            if deadline < local_date(market, mission.created_at):
                continue  # its window had closed before the mission existed
            status = (
                "upcoming"
                if today < starts_on
                else "missed"
                if today > deadline
                else MemberMission.Status.IN_PROGRESS
            )
            current, target, completed_at = 0, target_for(mission.goal), None
        else:
            starts_on, deadline = row.starts_on, row.deadline
            status = row.status
            if status == MemberMission.Status.IN_PROGRESS and today > deadline:
                status = MemberMission.Status.MISSED  # missions_close has not run yet
            current, target, completed_at = row.current, row.target, row.completed_at
        out.append(
            {
                "code": mission.code,
                "name": localized_name(
                    mission.name,
                    mission.names if isinstance(mission.names, dict) else {},
                    member.language,
                ),
                "description": mission.description,
                "goal": mission.goal,
                "status": str(status),
                "progress": {"current": current, "target": target},
                "starts_on": starts_on.isoformat(),
                "deadline": deadline.isoformat(),
                "reward": _reward_view(mission.reward_points, mission.reward),
                "completed_at": completed_at.isoformat() if completed_at else None,
            }
        )
    return out


# --- the job: close what ran out, pay what could not be paid ---------------------


# Hourly, like the points jobs: every market's local midnight within the hour.
@job(
    title="missions: close missed",
    schedule=crontab(minute="40"),
    task="rewards.missions_close",
    unit="missions",
)
def missions_close(
    *,
    as_of: datetime,
    batch_size: int = BATCH,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> JobResult:
    """Missions in progress whose deadline has passed (in the member's
    market) become missed, in set-based batches; and completed missions
    whose voucher could not be issued at completion are paid now."""

    def batches(market: Market, today: date) -> Batch:
        after = Keyset()

        def batch() -> int | None:
            rows = after.page(
                MemberMission.objects.filter(
                    status=MemberMission.Status.IN_PROGRESS,
                    deadline__lt=today,
                    member__market=market,
                ),
                "deadline",
                batch_size,
            )
            if not rows:
                return None
            # A purchase completing one of these at this moment either
            # updates it first (then it is no longer in progress here) or
            # finds it missed: the condition is checked again on the row.
            return MemberMission.objects.filter(
                pk__in=[row_id for row_id, _ in rows],
                status=MemberMission.Status.IN_PROGRESS,
                deadline__lt=today,
            ).update(status=MemberMission.Status.MISSED, updated_at=timezone.now())

        return batch

    result = run_batches(
        "missions_close", (batches(m, d) for m, d in market_days(as_of)), progress, max_batches
    )
    result.rows += missions_reward_retry(as_of=as_of)
    return result


def missions_reward_retry(*, as_of: datetime, limit: int = 1000) -> int:
    """Pay the completed missions left unrewarded (a voucher out of stock)."""
    rows = list(
        MemberMission.objects.filter(
            status=MemberMission.Status.COMPLETED,
            rewarded_at__isnull=True,
            completed_at__lte=as_of,
        )
        .select_related("mission", "member__market", "member__tier")
        .order_by("completed_at")[:limit]
    )
    paid = 0
    for row in rows:
        with transaction.atomic():
            account_lock(row.member_id)
            spec = _spec(row.mission, frozenset())
            mission_reward_pay(member=row.member, spec=spec, row_id=row.pk, now=timezone.now())
            paid += MemberMission.objects.filter(pk=row.pk, rewarded_at__isnull=False).exists()
    return paid
