"""Charts drawn on the server as inline SVG: bars (grouped or stacked around
zero), a line with an interval band, and a heatmap.

No JavaScript and no assets from elsewhere: the page carries its charts.
Every chart is a <figure> with a visible title, labelled axes, each data
mark carrying its value in a <title> (the browser's tooltip, and what a
screen reader reads), and a one-paragraph summary as the figure's caption
and the SVG's description. Every text is escaped here; the result is safe
to put in a template.

Data marks have the class `mark` (the browser test counts them).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
HEIGHT = 260
# Room for the axes' ticks and labels around the plot.
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 16, 52

# Colour-blind safe (Okabe-Ito), in the order series take them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

_ids = itertools.count(1)

Number = float | int


def number(value: Number | None) -> str:
    """1234567 -> "1,234,567"; 0.5 -> "0.5"; None -> "no data"."""
    if value is None:
        return "no data"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def percent(value: Number | None) -> str:
    """A share (0.3167) as "31.7 %"."""
    return "no data" if value is None else f"{100 * value:.1f} %"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2, 2.5 or 5 times a
    power of ten, about `count` of them."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    steps = round((end - start) / step)
    return [round(start + i * step, 10) for i in range(steps + 1)]


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number | None]
    colour: str | None = None


@dataclass(frozen=True)
class _Frame:
    """The plot area and a y scale."""

    ticks: list[float]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def plot_width(self) -> float:
        return self.width - LEFT - RIGHT

    @property
    def plot_height(self) -> float:
        return self.height - TOP - BOTTOM

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return TOP + self.plot_height * (high - value) / (high - low)


def _figure(
    *,
    title: str,
    summary: str,
    body: str,
    kind: str,
    width: int = WIDTH,
    height: int = HEIGHT,
    legend: Sequence[tuple[str, str]] = (),
) -> SafeString:
    chart_id = f"chart-{next(_ids)}"
    legend_html = "".join(
        format_html('<li><span class="swatch" style="background:{}"></span>{}</li>', colour, name)
        for name, colour in legend
    )
    return format_html(
        '<figure class="chart chart-{kind}">'
        '<figcaption class="chart-title" id="{id}-t">{title}</figcaption>'
        "{legend}"
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'role="img" '
        'aria-labelledby="{id}-t {id}-d" preserveAspectRatio="xMidYMid meet">'
        '<title>{title}</title><desc id="{id}-d">{summary}</desc>{body}</svg>'
        '<p class="chart-summary">{summary}</p>'
        "</figure>",
        kind=kind,
        id=chart_id,
        title=title,
        summary=summary,
        legend=mark_safe(f'<ul class="chart-legend">{legend_html}</ul>' if legend_html else ""),
        w=width,
        h=height,
        body=mark_safe(body),
    )


def _y_axis(frame: _Frame, label: str, fmt: Callable[[float], str]) -> str:
    parts = []
    for tick in frame.ticks:
        y = frame.y(tick)
        parts.append(
            f'<line class="grid{" zero" if tick == 0 else ""}" x1="{LEFT}" x2="{frame.width - RIGHT}"'
            f' y1="{y:.1f}" y2="{y:.1f}" stroke="{"#666" if tick == 0 else "#ddd"}" />'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end"'
            f' font-size="11" fill="#333">{escape(fmt(tick))}</text>'
        )
    middle = TOP + frame.plot_height / 2
    parts.append(
        f'<text class="axis-label" x="14" y="{middle:.1f}" text-anchor="middle" font-size="11"'
        f' fill="#333" transform="rotate(-90 14 {middle:.1f})">{escape(label)}</text>'
    )
    return "".join(parts)


def _x_axis(frame: _Frame, categories: Sequence[str], label: str) -> str:
    band = frame.plot_width / max(len(categories), 1)
    # Every label where they fit, else every other one (the tooltips name each).
    longest = max((len(line) for c in categories for line in c.split("\n")), default=1)
    every = 1 if band >= 7 * longest else 2
    parts = []
    baseline = frame.height - BOTTOM
    for i, category in enumerate(categories):
        if i % every:
            continue
        x = LEFT + band * (i + 0.5)
        # A label may have two lines ("Champions\nkeep").
        lines = "".join(
            f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 12}">{escape(line)}</tspan>'
            for n, line in enumerate(category.split("\n"))
        )
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{baseline + 16}" text-anchor="middle"'
            f' font-size="11" fill="#333">{lines}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{LEFT + frame.plot_width / 2:.1f}" y="{frame.height - 8}"'
        f' text-anchor="middle" font-size="11" fill="#333">{escape(label)}</text>'
    )
    return "".join(parts)


def bar_chart(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    summary: str,
    stacked: bool = False,
    value_format: Callable[[Number], str] = number,
    value_labels: bool | None = None,
    width: int = WIDTH,
) -> SafeString:
    """Bars per category: one per series side by side, or `stacked` (positive
    values stack up from zero, negative ones down, as points in and out of a
    balance). `value_labels` writes each value over its bar (default: when
    there is one series and at most 12 categories)."""
    colours = [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    if stacked:
        highs = [sum(max(s.values[i] or 0, 0) for s in series) for i in range(len(categories))]
        lows = [sum(min(s.values[i] or 0, 0) for s in series) for i in range(len(categories))]
    else:
        highs = [max((s.values[i] or 0 for s in series), default=0) for i in range(len(categories))]
        lows = [min((s.values[i] or 0 for s in series), default=0) for i in range(len(categories))]
    frame = _Frame(ticks=nice_ticks(min([0, *lows]), max([0, *highs])), width=width)
    if value_labels is None:
        value_labels = len(series) == 1 and len(categories) <= 12
    band = frame.plot_width / max(len(categories), 1)
    inner = band * 0.8
    parts = [_y_axis(frame, y_label, value_format)]
    for i, category in enumerate(categories):
        x0 = LEFT + band * i + (band - inner) / 2
        up = down = 0.0
        for k, s in enumerate(series):
            value = s.values[i]
            if value is None:
                continue
            if stacked:
                base = up if value >= 0 else down
                top, bottom = (base + value, base) if value >= 0 else (base, base + value)
                if value >= 0:
                    up += value
                else:
                    down += value
                x, w = x0, inner
            else:
                top, bottom = max(value, 0), min(value, 0)
                w = inner / len(series)
                x = x0 + w * k
            y1, y2 = frame.y(top), frame.y(bottom)
            tip = f"{category.replace(chr(10), ' ')}, {s.name}: {value_format(value)}"
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y1:.1f}" width="{max(w - 1, 1):.1f}"'
                f' height="{max(y2 - y1, 0.5):.1f}" fill="{colours[k]}"'
                f' data-value="{value}"><title>{escape(tip)}</title></rect>'
            )
            if value_labels and value:
                y_text = y1 - 4 if value >= 0 else y2 + 12
                parts.append(
                    f'<text class="value" x="{x + w / 2:.1f}" y="{y_text:.1f}"'
                    f' text-anchor="middle" font-size="10" fill="#222">'
                    f"{escape(value_format(value))}</text>"
                )
    parts.append(_x_axis(frame, categories, x_label))
    legend = [(s.name, c) for s, c in zip(series, colours, strict=True)] if len(series) > 1 else []
    return _figure(
        title=title, summary=summary, body="".join(parts), kind="bar", legend=legend, width=width
    )


def _runs(values: Sequence[Number | None]) -> list[list[int]]:
    """The indexes of consecutive non-empty values: a line breaks at a gap."""
    runs: list[list[int]] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def line_chart(
    *,
    title: str,
    categories: Sequence[str],
    values: Sequence[Number | None],
    x_label: str,
    y_label: str,
    summary: str,
    name: str = "",
    band: Sequence[tuple[Number, Number] | None] | None = None,
    band_name: str = "interval",
    value_format: Callable[[Number], str] = number,
    y_range: tuple[float, float] | None = None,
) -> SafeString:
    """A line over the categories, a dot per value (empty values leave a
    gap), and an optional shaded band (an interval) around it."""
    lows = [b[0] for b in (band or []) if b] + [v for v in values if v is not None]
    highs = [b[1] for b in (band or []) if b] + [v for v in values if v is not None]
    low, high = (min(lows), max(highs)) if lows else (0.0, 1.0)
    if y_range:
        low, high = max(min(low, 0), y_range[0]), min(max(high, 0), y_range[1])
    frame = _Frame(ticks=nice_ticks(low, high))
    step = frame.plot_width / max(len(categories), 1)

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    parts = [_y_axis(frame, y_label, value_format)]
    if band:
        for run in _runs([None if b is None else 1 for b in band]):
            upper = [f"{x(i):.1f},{frame.y(band[i][1]):.1f}" for i in run]  # type: ignore[index]
            lower = [f"{x(i):.1f},{frame.y(band[i][0]):.1f}" for i in reversed(run)]  # type: ignore[index]
            if len(run) == 1:  # a lone month: a bar as wide as a dot
                i = run[0]
                y1, y2 = frame.y(band[i][1]), frame.y(band[i][0])  # type: ignore[index]
                parts.append(
                    f'<rect class="band" x="{x(i) - 4:.1f}" y="{y1:.1f}" width="8"'
                    f' height="{y2 - y1:.1f}" fill="#0072B2" fill-opacity="0.18" />'
                )
            else:
                parts.append(
                    f'<polygon class="band" points="{" ".join(upper + lower)}"'
                    f' fill="#0072B2" fill-opacity="0.18" />'
                )
    for run in _runs(values):
        points = " ".join(f"{x(i):.1f},{frame.y(values[i]):.1f}" for i in run)  # type: ignore[arg-type]
        parts.append(
            f'<polyline class="line" points="{points}" fill="none" stroke="#0072B2"'
            f' stroke-width="2" />'
        )
    for i, value in enumerate(values):
        if value is None:
            continue
        tip = f"{categories[i]}: {(name + ' ') if name else ''}{value_format(value)}"
        if band and band[i]:
            tip += f" ({band_name} {value_format(band[i][0])} to {value_format(band[i][1])})"  # type: ignore[index]
        parts.append(
            f'<circle class="mark" cx="{x(i):.1f}" cy="{frame.y(value):.1f}" r="4"'
            f' fill="#0072B2" data-value="{value}"><title>{escape(tip)}</title></circle>'
        )
    parts.append(_x_axis(frame, categories, x_label))
    legend = [(name, "#0072B2"), (band_name, "#BFD9EC")] if band and name else []
    return _figure(title=title, summary=summary, body="".join(parts), kind="line", legend=legend)


def _heat_colour(share: float) -> str:
    """White (0) to the palette's blue (1), straight in RGB."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(255 + (t - 255) * share) for t in (0x00, 0x72, 0xB2))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    *,
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    x_label: str,
    y_label: str,
    summary: str,
    cell_titles: Sequence[Sequence[str]] | None = None,
    value_format: Callable[[float], str] = percent,
    scale_max: float | None = None,
) -> SafeString:
    """A grid of cells, one row per `rows`, one column per `columns`, shaded
    by value (0 white, `scale_max` or the largest value darkest), each with
    its value written in it. An empty value is a blank cell (not yet
    happened)."""
    filled = [v for row in values for v in row if v is not None]
    top = scale_max or max(filled, default=1.0) or 1.0
    cell_w = max(min((WIDTH - LEFT - RIGHT) / max(len(columns), 1), 56), 28)
    cell_h = 22
    # Never narrower than its axis label needs (a young club has one cohort).
    width = max(round(LEFT + cell_w * len(columns) + RIGHT), 480)
    height = TOP + cell_h * len(rows) + BOTTOM
    parts = []
    for r, row_name in enumerate(rows):
        y = TOP + cell_h * r
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + cell_h / 2 + 4:.1f}" text-anchor="end"'
            f' font-size="11" fill="#333">{escape(row_name)}</text>'
        )
        for c, value in enumerate(values[r]):
            if value is None:
                continue
            x = LEFT + cell_w * c
            shade = value / top
            tip = (
                cell_titles[r][c]
                if cell_titles
                else f"{row_name}, {columns[c]}: {value_format(value)}"
            )
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y}" width="{cell_w - 1:.1f}"'
                f' height="{cell_h - 1}" fill="{_heat_colour(shade)}" data-value="{value}">'
                f"<title>{escape(tip)}</title></rect>"
                f'<text class="value" x="{x + cell_w / 2:.1f}" y="{y + cell_h / 2 + 4:.1f}"'
                f' text-anchor="middle" font-size="10"'
                f' fill="{"#fff" if shade > 0.55 else "#222"}">{escape(value_format(value))}</text>'
            )
    baseline = TOP + cell_h * len(rows)
    for c, column in enumerate(columns):
        parts.append(
            f'<text class="tick" x="{LEFT + cell_w * (c + 0.5):.1f}" y="{baseline + 16}"'
            f' text-anchor="middle" font-size="11" fill="#333">{escape(column)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="{LEFT + cell_w * len(columns) / 2:.1f}" y="{height - 8}"'
        f' text-anchor="middle" font-size="11" fill="#333">{escape(x_label)}</text>'
        f'<text class="axis-label" x="4" y="{TOP - 4}" font-size="11" fill="#333">'
        f"{escape(y_label)}</text>"
    )
    return _figure(
        title=title,
        summary=summary,
        body="".join(parts),
        kind="heatmap",
        width=width,
        height=height,
    )
