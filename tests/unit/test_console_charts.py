"""The console's SVG charts: well-formed, escaped, labelled, sensible on empty input."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import Markup

from worker.entrypoints.console.charts import bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
Chart = Callable[..., Markup]
CHARTS = pytest.mark.parametrize("chart", [bar_chart, line_chart], ids=["bar", "line"])


def series(*counts: int) -> list[tuple[datetime, int]]:
    return [(START + timedelta(minutes=i), c) for i, c in enumerate(counts)]


def parse(svg: Markup) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element, group: str) -> list[str]:
    (g,) = [g for g in root.iter(f"{SVG}g") if group in g.get("class", "").split()]
    return [t.text or "" for t in g.iter(f"{SVG}text")]


@CHARTS
def test_a_chart_is_one_accessible_svg_element_without_script(chart: Chart) -> None:
    svg = chart(series(3, 0, 7, 2), title="Refunds completed per minute")
    assert isinstance(svg, Markup)
    root = parse(svg)
    assert root.get("role") == "img"
    assert (root.get("width"), root.get("height")) == ("560", "160")
    assert root.get("viewBox") == "0 0 560 160"
    first = root[0]
    assert first.tag == f"{SVG}title" and first.text == "Refunds completed per minute"
    assert root.find(f"{SVG}desc") is not None
    tags = {e.tag.removeprefix(SVG) for e in root.iter()}
    assert not tags & {"script", "style", "foreignObject", "image", "a", "use"}
    assert not any(k.startswith("on") for e in root.iter() for k in e.attrib)
    assert "href" not in str(svg)


@CHARTS
def test_every_text_is_escaped(chart: Chart) -> None:
    title = "Backlog <script>alert(1)</script> & \"quotes\" 'too'"
    svg = chart(series(1, 2), title=title)
    root = parse(svg)  # well-formed despite the markup in the title
    assert root[0].text == title
    assert root.get("aria-label") == title
    assert "<script>" not in str(svg)
    assert not list(root.iter(f"{SVG}script"))


def test_ticks_label_counts_and_times() -> None:
    points = [(START + timedelta(minutes=i), i % 8) for i in range(60)]
    root = parse(bar_chart(points, title="t"))
    assert texts(root, "chart-y") == ["0", "2", "4", "6", "8"]
    assert texts(root, "chart-x") == ["04:00", "04:15", "04:30", "04:45"]
    rects = list(root.iter(f"{SVG}rect"))
    assert len(rects) == sum(1 for _, c in points if c)  # zeros draw no bar
    assert rects[0].find(f"{SVG}title") is not None
    assert rects[0].find(f"{SVG}title").text == "04:01: 1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("start", "minutes", "labels"),
    [
        (datetime(2026, 11, 22, 4, 7, tzinfo=UTC), 60, ["04:15", "04:30", "04:45", "05:00"]),
        (datetime(2026, 11, 22, 0, 0, tzinfo=UTC), 1440, ["00:00", "06:00", "12:00", "18:00"]),
        (datetime(2026, 11, 22, 4, 7, 30, tzinfo=UTC), 3, ["04:07", "04:08", "04:09"]),
    ],
)
def test_time_ticks_fall_on_round_clock_times(
    start: datetime, minutes: int, labels: list[str]
) -> None:
    points = [(start + timedelta(minutes=i), 1) for i in range(minutes)]
    assert texts(parse(line_chart(points, title="t")), "chart-x") == labels


def test_bars_are_as_tall_as_their_count_and_stand_on_the_axis() -> None:
    root = parse(bar_chart(series(4, 2), title="t", width=200, height=100))
    tall, short = (float(r.get("height", "")) for r in root.iter(f"{SVG}rect"))
    assert tall == pytest.approx(2 * short)
    for r in root.iter(f"{SVG}rect"):
        assert float(r.get("y", "")) + float(r.get("height", "")) == pytest.approx(100 - 22)


def test_large_counts_get_short_labels_on_a_round_scale() -> None:
    root = parse(line_chart(series(0, 1_234_567), title="t"))
    assert texts(root, "chart-y") == ["0", "500k", "1M", "1.5M"]
    root = parse(line_chart(series(0, 3), title="t"))
    assert texts(root, "chart-y") == ["0", "1", "2", "3"]


@CHARTS
def test_empty_input_gives_axes_and_a_note(chart: Chart) -> None:
    root = parse(chart([], title="Nothing yet"))
    assert root[0].text == "Nothing yet"
    assert texts(root, "chart-x") == []
    assert texts(root, "chart-y") == ["0", "1"]
    assert "no data" in [t.text for t in root.iter(f"{SVG}text")]
    assert not list(root.iter(f"{SVG}rect")) and not list(root.iter(f"{SVG}polyline"))


def test_all_zero_input_draws_a_zero_line_and_no_bars() -> None:
    points = series(0, 0, 0, 0)
    bars = parse(bar_chart(points, title="t"))
    assert not list(bars.iter(f"{SVG}rect"))
    assert texts(bars, "chart-y") == ["0", "1"]
    assert texts(bars, "chart-x") == ["04:00", "04:01", "04:02", "04:03"]
    line = parse(line_chart(points, title="t"))
    (poly,) = line.iter(f"{SVG}polyline")
    ys = {pair.split(",")[1] for pair in poly.get("points", "").split()}
    assert ys == {str(160 - 22)}
    assert "no data" not in [t.text for t in line.iter(f"{SVG}text")]


def test_a_single_point_is_a_dot_on_the_line_chart() -> None:
    root = parse(line_chart(series(5), title="t"))
    (dot,) = root.iter(f"{SVG}circle")
    assert dot.find(f"{SVG}title").text == "04:00: 5"  # type: ignore[union-attr]
    assert texts(root, "chart-x") == ["04:00"]


@CHARTS
def test_impossible_input_is_refused_by_name(chart: Chart) -> None:
    with pytest.raises(ValueError, match="negative"):
        chart(series(1, -1), title="t")
    with pytest.raises(ValueError, match="pixels"):
        chart(series(1), title="t", width=10)
