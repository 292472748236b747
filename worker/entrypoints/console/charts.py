"""Server-rendered SVG charts of per-minute counts, for the console's pages.

Pure: a sequence of (minute, count) points in, one complete `<svg>` element out, as
`markupsafe.Markup` for a template to insert as it is. Every text in it (the title,
the tick labels, the tooltips) is escaped; there is no script, no style element and no
external reference, so the page's content security policy needs nothing for it. Colours
come from `currentColor` and the `chart-*` classes, for the page's stylesheet.

An empty sequence gives the axes and a "no data" note; all-zero counts give a zero line
and a count axis of 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

__all__ = ["bar_chart", "line_chart"]

Point = tuple[datetime, int]

_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 10, 22
_MIN_WIDTH, _MIN_HEIGHT = 160, 80
_MAX_X_TICKS = 5
_MAX_Y_INTERVALS = 4
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def bar_chart(
    points: Sequence[Point], *, title: str, width: int = 560, height: int = 160
) -> Markup:
    """One bar per point (a zero draws none), time along x, counts along y."""
    frame = _Frame(points, title=title, width=width, height=height, bars=True)
    marks: list[str] = []
    step = frame.plot_w / len(points) if points else 0.0
    gap = min(1.0, step * 0.2)
    for i, (at, count) in enumerate(points):
        if count == 0:
            continue
        y = frame.y(count)
        marks.append(
            f'<rect x="{_n(_LEFT + i * step + gap / 2)}" y="{_n(y)}"'
            f' width="{_n(max(step - gap, 0.5))}" height="{_n(frame.base - y)}">'
            f"<title>{_point_label(at, count)}</title></rect>"
        )
    return frame.render('<g class="chart-bars" fill="currentColor">' + "".join(marks) + "</g>")


def line_chart(
    points: Sequence[Point], *, title: str, width: int = 560, height: int = 160
) -> Markup:
    """A line through the points (a dot for a single one), time along x, counts along y."""
    frame = _Frame(points, title=title, width=width, height=height, bars=False)
    if not points:
        return frame.render("")
    coords = [(frame.x(i), frame.y(count)) for i, (_, count) in enumerate(points)]
    if len(coords) == 1:
        (x, y), (at, count) = coords[0], points[0]
        mark = (
            f'<circle class="chart-line" cx="{_n(x)}" cy="{_n(y)}" r="2.5"'
            f' fill="currentColor"><title>{_point_label(at, count)}</title></circle>'
        )
        return frame.render(mark)
    path = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
    mark = (
        f'<polyline class="chart-line" points="{path}" fill="none" stroke="currentColor"'
        ' stroke-width="1.5" stroke-linejoin="round"/>'
    )
    return frame.render(mark)


class _Frame:
    """The chart's geometry, axes and ticks for a set of points."""

    def __init__(
        self, points: Sequence[Point], *, title: str, width: int, height: int, bars: bool
    ) -> None:
        if width < _MIN_WIDTH or height < _MIN_HEIGHT:
            raise ValueError(f"a chart needs at least {_MIN_WIDTH} x {_MIN_HEIGHT} pixels")
        if any(count < 0 for _, count in points):
            raise ValueError("counts must not be negative")
        self.points = points
        self.title = title
        self.width, self.height = width, height
        self.bars = bars
        self.plot_w = width - _LEFT - _RIGHT
        self.plot_h = height - _TOP - _BOTTOM
        self.base = _TOP + self.plot_h
        self.top, self.step = _count_scale(max((c for _, c in points), default=0))

    def x(self, i: int) -> float:
        """Where point `i` sits along x (the middle of its bar, for a bar chart)."""
        n = len(self.points)
        if self.bars:
            return _LEFT + (i + 0.5) * self.plot_w / n
        return _LEFT + (self.plot_w / 2 if n == 1 else i * self.plot_w / (n - 1))

    def y(self, count: int) -> float:
        return self.base - count / self.top * self.plot_h

    def render(self, marks: str) -> Markup:
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart"'
            f' width="{self.width}" height="{self.height}"'
            f' viewBox="0 0 {self.width} {self.height}" aria-label="{escape(self.title)}"'
            ' font-family="sans-serif" font-size="10">',
            f"<title>{escape(self.title)}</title>",
            f"<desc>{escape(self._summary())}</desc>",
            self._y_axis(),
            self._x_axis(),
            marks,
        ]
        if not self.points:
            parts.append(
                f'<text class="chart-empty" x="{_n(_LEFT + self.plot_w / 2)}"'
                f' y="{_n(_TOP + self.plot_h / 2)}" text-anchor="middle"'
                ' fill="currentColor">no data</text>'
            )
        parts.append("</svg>")
        return Markup("".join(parts))

    def _summary(self) -> str:
        if not self.points:
            return "no data"
        first, last = self.points[0][0], self.points[-1][0]
        highest = max(c for _, c in self.points)
        return (
            f"{len(self.points)} minutes from {_clock(first)} to {_clock(last)},"
            f" highest {highest}, total {sum(c for _, c in self.points)}"
        )

    def _y_axis(self) -> str:
        out = [
            f'<g class="chart-axis chart-y" fill="currentColor" stroke="currentColor">'
            f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_n(self.base)}"'
            ' stroke-width="1"/>'
        ]
        value = 0
        while value <= self.top:
            y = _n(self.y(value))
            out.append(
                f'<line x1="{_LEFT - 4}" y1="{y}" x2="{_LEFT}" y2="{y}" stroke-width="1"/>'
                f'<text x="{_LEFT - 6}" y="{y}" text-anchor="end" dominant-baseline="middle"'
                f' stroke="none">{escape(_count_label(value))}</text>'
            )
            value += self.step
        out.append("</g>")
        return "".join(out)

    def _x_axis(self) -> str:
        right = _LEFT + self.plot_w
        out = [
            f'<g class="chart-axis chart-x" fill="currentColor" stroke="currentColor">'
            f'<line x1="{_LEFT}" y1="{_n(self.base)}" x2="{right}" y2="{_n(self.base)}"'
            ' stroke-width="1"/>'
        ]
        label_y = _n(self.base + 14)
        for i in _tick_indices(self.points):
            x = _n(self.x(i))
            out.append(
                f'<line x1="{x}" y1="{_n(self.base)}" x2="{x}" y2="{_n(self.base + 4)}"'
                f' stroke-width="1"/><text x="{x}" y="{label_y}" text-anchor="middle"'
                f' stroke="none">{escape(_clock(self.points[i][0]))}</text>'
            )
        out.append("</g>")
        return "".join(out)


def _count_scale(highest: int) -> tuple[int, int]:
    """(top of the count axis, tick step): a 1-2-5 step, at most four intervals."""
    if highest <= 0:
        return 1, 1
    raw = highest / _MAX_Y_INTERVALS
    magnitude = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(highest / step), step


def _tick_indices(points: Sequence[Point]) -> list[int]:
    """The points to label along x: those on a round clock time (every 1, 2, 5, 10, 15,
    30 minutes, 1, 2, 3, 6, 12 hours or a day, the finest giving at most five), or the
    first and last when none is."""
    n = len(points)
    if n == 0:
        return []
    interval = next((m for m in _TICK_MINUTES if m * _MAX_X_TICKS >= n), _TICK_MINUTES[-1])
    picked = [i for i, (at, _) in enumerate(points) if (at.hour * 60 + at.minute) % interval == 0]
    if not picked or len(picked) > _MAX_X_TICKS:
        return sorted({0, n - 1})
    return picked


def _count_label(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 10_000:
        return f"{value / 1000:g}k"
    return str(value)


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M")


def _point_label(at: datetime, count: int) -> Markup:
    return escape(f"{_clock(at)}: {count}")


def _n(value: float) -> str:
    """A coordinate, to a tenth of a pixel."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
