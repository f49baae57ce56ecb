"""Server-drawn SVG charts: geometry computed here, drawn by a template partial.

No JavaScript charting library: the chart is plain SVG in the page, so it passes
the Content Security Policy, prints, and works without scripts. Colours come from
CSS classes (`series-0` …), not inline styles, which the CSP would refuse.
"""

import math
from dataclasses import dataclass
from datetime import date

from .selectors import UsageReport

# Two drawings of the same chart: SVG text scales with the picture, so one drawing
# shrunk onto a phone would have unreadable labels. CSS shows the one that fits.
WIDE = (720, 240)
NARROW = (360, 220)
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28  # room for the axis labels
SERIES = 5  # the busiest types get a colour each; the rest are one "other types" series


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str  # the bar's tooltip and accessible name: "2026-11-28, Inventory Export: 12 calls"


@dataclass
class Tick:
    y: float
    label: str


@dataclass
class DayLabel:
    x: float
    label: str
    anchor: str = "middle"  # the newest day's label ends at the plot's edge instead of running past it


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    days: list[DayLabel]
    legend: list[tuple[int, str]]  # (series, name)
    plot_left: int
    plot_right: int
    baseline: float


def _nice_top(peak: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at or above the peak (at least 1)."""
    if peak <= 1:
        return 1
    power = 10 ** math.floor(math.log10(peak))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= peak)


def _plural(n: int) -> str:
    return f"{n:,} call{'' if n == 1 else 's'}"


def usage_chart(report: UsageReport, size: tuple[int, int] = WIDE) -> Chart:
    """Calls per day, stacked by API type (busiest first, from the bottom)."""
    width_total, height_total = size
    named = report.types[:SERIES]
    series = [(n, t.name, t.per_day) for n, t in enumerate(named)]
    if rest := report.types[SERIES:]:
        other = [sum(day) for day in zip(*(t.per_day for t in rest), strict=True)]
        series.append((SERIES, f"{len(rest)} other types", other))
    top = _nice_top(max(report.per_day, default=0))
    plot_height = height_total - TOP - BOTTOM
    slot = (width_total - LEFT - RIGHT) / max(len(report.days), 1)
    width = max(slot * 0.7, 1)
    bars = []
    for i, day in enumerate(report.days):
        y = height_total - BOTTOM
        for n, name, per_day in series:
            calls = per_day[i]
            if not calls:
                continue
            height = calls / top * plot_height
            y -= height
            bars.append(Bar(LEFT + i * slot + (slot - width) / 2, y, width, height, n, _title(day, name, calls)))
    # Gridlines at 0, half and the top; a top of 1 has no whole half, so no middle line.
    fractions = (0, 1) if top == 1 else (0, 0.5, 1)
    ticks = [Tick(height_total - BOTTOM - plot_height * f, f"{top * f:,.1f}".removesuffix(".0")) for f in fractions]
    every = 7 if len(report.days) > 14 else 1
    days = [
        DayLabel(LEFT + i * slot + slot / 2, day.strftime("%b %-d"))
        for i, day in enumerate(report.days)
        if (len(report.days) - 1 - i) % every == 0
    ]
    if days:
        days[-1] = DayLabel(width_total - RIGHT, days[-1].label, "end")
    legend = [(n, name) for n, name, _ in series]
    return Chart(width_total, height_total, bars, ticks, days, legend, LEFT, width_total - RIGHT, height_total - BOTTOM)


def _title(day: date, name: str, calls: int) -> str:
    return f"{day.isoformat()}, {name}: {_plural(calls)}"
