"""Bar-chart geometry for the dashboard's inline SVG (console/templates/_chart.html): computed here, drawn by the
template, so the charts need no script, no library and no network."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

# In viewBox units; the SVG scales to its card, so a phone shows it at about 0.7x and a laptop at about 1.1x.
WIDTH, HEIGHT = 480, 200
LEFT, BOTTOM, TOP = 40, 24, 10  # room for the axis labels
MIN_LABEL_GAP = 56  # dates under the axis closer than this would overlap


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str
    value: str


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label) of the horizontal grid lines
    xlabels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: int = HEIGHT - BOTTOM
    empty: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 6, 8, 10):  # even steps: the half-way grid line is a whole number
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def bars(title: str, points: list[tuple[dt.date, float | None]], *, percent: bool = False) -> Chart:
    """One bar per day; None (no data that day) draws no bar. Percent charts are scaled 0-100 %."""
    # Counts get at least 0-2-4 on the axis: halves of a message are not a thing.
    top = 1.0 if percent else max(4.0, _nice_max(max((v or 0.0 for _, v in points), default=0.0)))
    plot_w, plot_h = WIDTH - LEFT - 6, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(1, len(points))
    out = []
    for i, (day, value) in enumerate(points):
        shown = "—" if value is None else (f"{value:.0%}" if percent else f"{value:g}")
        h = 0.0 if value is None else plot_h * value / top
        out.append(Bar(LEFT + i * slot + slot * 0.15, TOP + plot_h - h, max(1.0, slot * 0.7), h, f"{day:%d/%m}", shown))
    ticks = [(TOP + plot_h * (1 - f), f"{top * f:.0%}" if percent else f"{top * f:g}") for f in (0, 0.5, 1)]
    every = max(1, math.ceil(len(points) / 6))  # at most about 6 dates under the axis
    xlabels: list[tuple[float, str]] = []
    for i, b in enumerate(out):
        x = b.x + b.w / 2
        if i % every == 0 and (not xlabels or x - xlabels[-1][0] >= MIN_LABEL_GAP):
            xlabels.append((x, b.label))
    return Chart(title, out, ticks, xlabels, empty=all(v in (None, 0) for _, v in points))
