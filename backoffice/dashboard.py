"""The staff's dashboard: the club's health in one market at a glance.

Every figure comes from a selector (`insights.selectors` for NPS, cohorts,
segments, the models and the liability; `backoffice.selectors` for the
members' counts); this module only turns their answers, shaped as the
API's, into panels and charts (`backoffice.charts`). Each panel is shown
to staff who may view what it summarises (`PANEL_PERMISSIONS`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from backoffice import charts
from backoffice.charts import Series
from backoffice.selectors import members_overview, month_starts
from club.dates import today_for
from club.models import Market
from insights import selectors as insights

# A panel summarises rows of one model: staff who may view those see it.
PANEL_PERMISSIONS = {
    "members": "members.view_member",
    "retention": "members.view_member",
    "nps": "insights.view_npsresponse",
    "segments": "insights.view_memberscore",
    "model": "insights.view_memberscore",
    "liability": "loyalty.view_ledgerentry",
}
MONTHS = 12
REFRESH_HINT = "run insights_refresh (nightly in beat, or python manage.py insights_refresh)"

# The contract's segments in its order, with what marketing does about each.
SEGMENT_ORDER = (
    "champions",
    "loyal",
    "cant_lose",
    "potential",
    "new",
    "at_risk",
    "hibernating",
    "lost",
)
SEGMENT_NAMES = {
    "champions": "Champions",
    "loyal": "Loyal",
    "cant_lose": "Can't lose",
    "potential": "Potential",
    "new": "New",
    "at_risk": "At risk",
    "hibernating": "Hibernating",
    "lost": "Lost",
}
ACTION_NAMES = {"keep": "keep", "develop": "develop", "let_go": "let go"}

# The roll-forward's movements, in and out of the balance owed.
LIABILITY_MOVEMENTS = (
    ("earned", "earned", "#0072B2"),
    ("bonus", "bonus", "#56B4E9"),
    ("redeem_cancelled", "redemptions cancelled", "#009E73"),
    ("adjusted", "adjusted by staff", "#CC79A7"),
    ("returned", "returned", "#E69F00"),
    ("redeemed", "redeemed", "#D55E00"),
    ("expired", "expired", "#555555"),
)


def month_label(month: str | dt.date) -> str:
    """ "2026-10" or a date -> "Oct 26"."""
    if isinstance(month, str):
        month = dt.date.fromisoformat(f"{month}-01")
    return month.strftime("%b %y")


def month_key(month: dt.date) -> str:
    return f"{month:%Y-%m}"


# -- the panels: a report in, what the template shows out -------------------


def nps_panel(*, report: dict, months: list[dt.date]) -> dict[str, Any]:
    """The NPS of the period with its interval, and its trend by month (the
    report grouped by month)."""
    if not report["responses"]:
        return {"empty": "No NPS answers in the last 12 months: nothing to score yet."}
    by_month = {g["key"]: g for g in report.get("groups") or []}
    values: list[float | None] = []
    band: list[tuple[float, float] | None] = []
    for month in months:
        group = by_month.get(month_key(month))
        if group and group["responses"]:
            values.append(group["nps"])
            band.append(tuple(group["ci95"]))  # type: ignore[arg-type]
        else:
            values.append(None)
            band.append(None)
    answered = [v for v in values if v is not None]
    latest = next(
        (
            (months[i], v, by_month[month_key(months[i])]["responses"])
            for i, v in reversed(list(enumerate(values)))
            if v is not None
        ),
        None,
    )
    summary = (
        f"NPS {report['nps']:+.1f} over the last 12 months from {report['responses']:,} members' "
        f"latest answers, 95 % interval {report['ci95'][0]:+.1f} to {report['ci95'][1]:+.1f}. "
        f"By month it ranged from {min(answered):+.1f} to {max(answered):+.1f}"
        + (
            f"; in {latest[0]:%B %Y} it was {latest[1]:+.1f} ({latest[2]:,} answers)."
            if latest
            else "."
        )
    )
    return {
        "report": report,
        "chart": charts.line_chart(
            title="NPS by month, with its 95 % interval",
            categories=[month_label(m) for m in months],
            values=values,
            band=band,
            name="NPS",
            band_name="95 % interval",
            x_label="month the answer was given",
            y_label="NPS (-100 to +100)",
            summary=summary,
            value_format=lambda v: f"{v:+.1f}" if v else "0",
            y_range=(-100, 100),
        ),
    }


def retention_panel(*, report: dict) -> dict[str, Any]:
    """Cohort x month heatmap of the share of each enrolment month's members
    who purchased in each month since."""
    cohorts = [c for c in report["cohorts"] if c["members"]]
    if not cohorts:
        return {"empty": "No members enrolled in the last 12 months: no cohorts to follow."}
    width = max(len(c["retention"]) for c in cohorts)
    columns = [f"+{k}" for k in range(width)]
    values, titles = [], []
    for cohort in cohorts:
        row = [*cohort["retention"], *[None] * (width - len(cohort["retention"]))]
        values.append(row)
        titles.append(
            [
                f"Enrolled {month_label(cohort['cohort'])}: {cohort['active'][k]:,} of "
                f"{cohort['members']:,} members purchased in month +{k} "
                f"({charts.percent(cohort['retention'][k])})"
                if k < len(cohort["retention"])
                else ""
                for k in range(width)
            ]
        )
    later = [c["retention"][1] for c in cohorts if len(c["retention"]) > 1]
    summary = (
        f"{len(cohorts)} monthly cohorts, {sum(c['members'] for c in cohorts):,} members. "
        + (
            f"On average {charts.percent(sum(later) / len(later))} of a cohort purchased again "
            "in the month after it enrolled. "
            if later
            else ""
        )
        + "Darker cells: more of the cohort purchased that month."
    )
    return {
        "report": report,
        "chart": charts.heatmap(
            title="Retention: share of each month's new members who purchased, month by month",
            rows=[month_label(c["cohort"]) for c in cohorts],
            columns=columns,
            values=values,
            cell_titles=titles,
            x_label="months after the month of enrolment",
            y_label="enrolled",
            summary=summary,
        ),
    }


def segments_panel(*, report: dict) -> dict[str, Any]:
    """Each value segment's share of the scored members and of their
    revenue, with what to do about it."""
    if not report["as_of"] or not report["members"]:
        return {"empty": f"No scores yet: {REFRESH_HINT}."}
    by_code = {s["segment"]: s for s in report["segments"]}
    rows = [by_code[code] for code in SEGMENT_ORDER if code in by_code]
    rows += [s for s in report["segments"] if s["segment"] not in SEGMENT_ORDER]
    categories = [
        f"{SEGMENT_NAMES.get(s['segment'], s['segment'])}\n{ACTION_NAMES.get(s['action'], s['action'])}"
        for s in rows
    ]
    top = max(rows, key=lambda s: s["revenue_share"])
    summary = (
        f"{report['members']:,} member{'' if report['members'] == 1 else 's'} in segments on "
        f"{report['as_of']}. "
        f"{SEGMENT_NAMES.get(top['segment'], top['segment'])} bring the most revenue: "
        f"{charts.percent(top['revenue_share'])} of it from {charts.percent(top['share'])} "
        "of the members."
    )
    return {
        "report": report,
        "rows": [
            {
                **s,
                "name": SEGMENT_NAMES.get(s["segment"], s["segment"]),
                "action_name": ACTION_NAMES.get(s["action"], s["action"]),
                "share_text": charts.percent(s["share"]),
                "revenue_share_text": charts.percent(s["revenue_share"]),
            }
            for s in rows
        ],
        "chart": charts.bar_chart(
            title="Value segments: share of members and of their 12 months' revenue",
            categories=categories,
            series=[
                Series("share of members", [s["share"] for s in rows], "#0072B2"),
                Series("share of revenue", [s["revenue_share"] for s in rows], "#E69F00"),
            ],
            x_label="segment and what to do: keep, develop or let go",
            width=720,
            y_label="share",
            summary=summary,
            value_format=charts.percent,
        ),
    }


def liability_panel(*, report: dict) -> dict[str, Any]:
    """What the club owes in points: the outstanding total and its value,
    the 12 months' roll-forward and the points expiring ahead."""
    months = report["months"]
    categories = [month_label(m["month"]) for m in months]
    series = [
        Series(name, [m[field] for m in months], colour)
        for field, name, colour in LIABILITY_MOVEMENTS
        if any(m[field] for m in months)
    ]
    outstanding = report["outstanding"]
    currency = report["currency"]
    breakage = report["breakage_rate_12m"]
    panel: dict[str, Any] = {
        "report": report,
        "breakage": "none yet" if breakage is None else charts.percent(breakage),
    }
    if months:
        first, last = months[0], months[-1]
        totals = {field: sum(m[field] for m in months) for field, _, _ in LIABILITY_MOVEMENTS}
        summary = (
            f"The points owed went from {first['opening']:,} at the start of "
            f"{month_label(first['month'])} to {last['closing']:,} at the end of "
            f"{month_label(last['month'])}: {totals['earned'] + totals['bonus']:,} earned "
            f"(bonus included), {-totals['redeemed'] - totals['redeem_cancelled']:,} redeemed net, "
            f"{-totals['expired']:,} expired, {-totals['returned']:,} taken back by returns."
        )
        panel["rollforward"] = charts.bar_chart(
            title="Roll-forward: points in (above zero) and out (below) each month",
            categories=categories,
            series=series or [Series("no movement", [0 for _ in months])],
            stacked=True,
            x_label="month booked",
            y_label="points",
            summary=summary,
        )
        panel["closing"] = charts.line_chart(
            title="Points owed at the end of each month",
            categories=categories,
            values=[m["closing"] for m in months],
            x_label="month",
            y_label="points",
            summary=f"At the end of {month_label(last['month'])} the club owed "
            f"{last['closing']:,} points, worth {outstanding['value']} {currency}.",
        )
        panel["totals"] = totals
    expiring = report["expiring"]
    if any(e["points"] for e in expiring):
        total = sum(e["points"] for e in expiring)
        soonest = next(e for e in expiring if e["points"])
        panel["expiring"] = charts.bar_chart(
            title="Points expiring in the next 12 months",
            categories=[month_label(e["month"]) for e in expiring],
            series=[Series("expiring", [e["points"] for e in expiring], "#555555")],
            x_label="month the points expire",
            y_label="points",
            summary=f"{total:,} points expire in the next 12 months unless spent, worth "
            f"{(Decimal(total) * Decimal(report['point_value'])):.2f} {currency}; the first "
            f"{soonest['points']:,} in {month_label(soonest['month'])}.",
        )
    else:
        panel["expiring_empty"] = "No points expire in the next 12 months."
    return panel


def panels_for(request: HttpRequest) -> set[str]:
    return {panel for panel, perm in PANEL_PERMISSIONS.items() if request.user.has_perm(perm)}


def dashboard_view(request: HttpRequest, *, each_context: dict[str, Any]) -> HttpResponse:
    """GET /admin/dashboard/?market=SE: the panels the staff user may see,
    for one market (the first by code unless chosen)."""
    allowed = panels_for(request)
    if not allowed:
        raise PermissionDenied
    markets = list(Market.objects.order_by("code"))
    context: dict[str, Any] = {
        **each_context,
        "title": "Dashboard",
        "markets": markets,
        "panels": allowed,
    }
    if not markets:
        context["empty"] = "No markets yet: add one under Club, or load the demo club."
        return TemplateResponse(request, "backoffice/dashboard.html", context)
    code = request.GET.get("market") or markets[0].code
    market = next((m for m in markets if m.code == code), None)
    if market is None:
        raise Http404("No such market.")
    now = timezone.now()
    today = today_for(market, now)
    months = month_starts(last=today, count=MONTHS)
    context.update(market=market, today=today)
    if "members" in allowed:
        context["members"] = members_overview(market=market, now=now)
    if "nps" in allowed:
        context["nps"] = nps_panel(
            report=insights.nps_report(
                market=market, date_from=months[0], date_to=today, group_by="month"
            ),
            months=months,
        )
    if "retention" in allowed:
        context["retention"] = retention_panel(
            report=insights.retention_report(
                market=market, month_from=months[0], month_to=months[-1]
            )
        )
    if "segments" in allowed:
        context["segments"] = segments_panel(report=insights.segments_report(market=market))
    if "model" in allowed:
        context["model"] = insights.model_report(market=market)
        context["model_empty"] = f"No model fitted yet: {REFRESH_HINT}."
    if "liability" in allowed:
        context["liability"] = liability_panel(report=insights.liability_report(market=market))
    return TemplateResponse(request, "backoffice/dashboard.html", context)


def member_points_chart(*, rows: list[dict], member: str) -> SafeString:
    """The member page's chart: points at each month's end, over 12 months."""
    last = rows[-1]
    change = last["closing"] - (rows[0]["closing"] - rows[0]["change"])
    return charts.bar_chart(
        title="Points at the end of each month (available and pending)",
        categories=[month_label(r["month"]) for r in rows],
        series=[Series("points", [r["closing"] for r in rows], "#0072B2")],
        x_label="month",
        y_label="points",
        summary=f"Member {member} holds {last['closing']:,} points now, "
        f"{change:+,} over the last {len(rows)} months.",
    )
