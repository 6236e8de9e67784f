"""backoffice.charts: server-drawn SVG charts, each well-formed, titled,
labelled, with its values readable and a summary for screen readers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from backoffice import charts
from backoffice.charts import Series

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The figure as XML: a chart that is not well-formed fails here."""
    return ET.fromstring(str(markup))


def marks(figure: ET.Element) -> list[ET.Element]:
    return [e for e in figure.iter() if "mark" in (e.get("class") or "").split()]


def tooltip(mark: ET.Element) -> str:
    return mark.find(f"{SVG}title").text  # type: ignore[union-attr,return-value]


def zero_line_y(figure: ET.Element) -> float:
    (line,) = [e for e in figure.iter(f"{SVG}line") if "zero" in (e.get("class") or "")]
    return float(line.get("y1"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0, 7, [0, 2, 4, 6, 8]),
        (-3000, 9000, [-5000, -2500, 0, 2500, 5000, 7500, 10000]),
        (0, 0.41, [0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        (5, 5, [5, 5.2, 5.4, 5.6, 5.8, 6]),
    ],
)
def test_ticks_are_round_and_cover_the_values(low, high, expected):
    assert charts.nice_ticks(low, high) == pytest.approx(expected)


def test_a_bar_chart_has_a_title_labelled_axes_a_summary_and_one_mark_per_value():
    figure = parse(
        charts.bar_chart(
            title="Points expiring",
            categories=["Jan 27", "Feb 27", "Mar 27"],
            series=[Series("expiring", [4000, None, 1200])],
            x_label="month the points expire",
            y_label="points",
            summary="5,200 points expire.",
        )
    )
    svg = figure.find(f"{SVG}svg")
    assert svg is not None and svg.get("role") == "img"
    assert figure.find("figcaption").text == "Points expiring"  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").text == "5,200 points expire."  # type: ignore[union-attr]
    caption_id, desc_id = svg.get("aria-labelledby").split()  # type: ignore[union-attr]
    assert figure.find("figcaption").get("id") == caption_id  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc").get("id") == desc_id  # type: ignore[union-attr]
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "month the points expire" in texts and "points" in texts
    # None draws nothing; each value carries its category, series and figure.
    assert [tooltip(m) for m in marks(figure)] == [
        "Jan 27, expiring: 4,000",
        "Mar 27, expiring: 1,200",
    ]
    assert "4,000" in texts and "1,200" in texts  # written over the bars


def test_taller_values_draw_taller_bars():
    figure = parse(
        charts.bar_chart(
            title="t",
            categories=["a", "b"],
            series=[Series("s", [100, 300])],
            x_label="x",
            y_label="y",
            summary="s",
        )
    )
    low, high = (float(m.get("height")) for m in marks(figure))  # type: ignore[arg-type]
    assert high == pytest.approx(3 * low, rel=0.01)


def test_stacked_bars_put_points_in_above_zero_and_points_out_below():
    figure = parse(
        charts.bar_chart(
            title="Roll-forward",
            categories=["Oct 26"],
            series=[Series("earned", [9000]), Series("bonus", [500]), Series("redeemed", [-4000])],
            stacked=True,
            x_label="month",
            y_label="points",
            summary="s",
        )
    )
    zero = zero_line_y(figure)
    earned, bonus, redeemed = marks(figure)
    top = lambda m: float(m.get("y"))  # noqa: E731
    bottom = lambda m: float(m.get("y")) + float(m.get("height"))  # noqa: E731
    assert bottom(earned) == pytest.approx(zero, abs=0.2)
    assert bottom(bonus) == pytest.approx(top(earned), abs=0.2)  # stacked on top
    assert top(redeemed) == pytest.approx(zero, abs=0.2) and bottom(redeemed) > zero
    legend = ["".join(li.itertext()) for li in figure.iter("li")]
    assert legend == ["earned", "bonus", "redeemed"]


def test_text_is_escaped():
    markup = charts.bar_chart(
        title="<b>title</b>",
        categories=["<script>alert(1)</script>"],
        series=[Series("a & b", [1])],
        x_label="x",
        y_label="y",
        summary='"quoted" <summary>',
    )
    assert "<script>" not in markup and "<b>" not in markup
    figure = parse(markup)
    assert tooltip(marks(figure)[0]) == "<script>alert(1)</script>, a & b: 1"


def test_a_line_breaks_where_a_month_has_no_value_and_carries_its_interval():
    figure = parse(
        charts.line_chart(
            title="NPS by month",
            categories=["Jan", "Feb", "Mar", "Apr"],
            values=[20.0, 30.5, None, -10.0],
            band=[(10.0, 30.0), (20.0, 41.0), None, (-40.0, 20.0)],
            name="NPS",
            band_name="95 % interval",
            x_label="month",
            y_label="NPS",
            summary="s",
            value_format=lambda v: f"{v:+.1f}",
            y_range=(-100, 100),
        )
    )
    assert len(list(figure.iter(f"{SVG}polyline"))) == 2  # Jan-Feb, then Apr alone
    bands = [e for e in figure.iter() if e.get("class") == "band"]
    assert len(bands) == 2
    assert [tooltip(m) for m in marks(figure)] == [
        "Jan: NPS +20.0 (95 % interval +10.0 to +30.0)",
        "Feb: NPS +30.5 (95 % interval +20.0 to +41.0)",
        "Apr: NPS -10.0 (95 % interval -40.0 to +20.0)",
    ]
    # Higher values sit higher (smaller y).
    jan, feb, apr = (float(m.get("cy")) for m in marks(figure))  # type: ignore[arg-type]
    assert feb < jan < apr


def test_a_heatmap_shades_darker_for_more_and_leaves_what_has_not_happened_blank():
    figure = parse(
        charts.heatmap(
            title="Retention",
            rows=["Oct 26", "Nov 26"],
            columns=["+0", "+1"],
            values=[[0.5, 0.25], [0.4, None]],
            x_label="months after enrolment",
            y_label="enrolled",
            summary="s",
        )
    )
    cells = marks(figure)
    assert len(cells) == 3
    assert [tooltip(c) for c in cells] == [
        "Oct 26, +0: 50.0 %",
        "Oct 26, +1: 25.0 %",
        "Nov 26, +0: 40.0 %",
    ]
    fills = [c.get("fill") for c in cells]
    # The largest value is the palette's blue; less is lighter (more red and green).
    assert fills[0] == "#0072b2"
    assert int(fills[1][1:3], 16) > int(fills[2][1:3], 16) > int(fills[0][1:3], 16)  # type: ignore[index]
    written = [t.text for t in figure.iter(f"{SVG}text") if t.get("class") == "value"]
    assert written == ["50.0 %", "25.0 %", "40.0 %"]


def test_two_charts_on_one_page_have_distinct_ids():
    args = {
        "title": "t",
        "categories": ["a"],
        "series": [Series("s", [1])],
        "x_label": "x",
        "y_label": "y",
        "summary": "s",
    }
    first, second = parse(charts.bar_chart(**args)), parse(charts.bar_chart(**args))
    assert first.find("figcaption").get("id") != second.find("figcaption").get("id")  # type: ignore[union-attr]
