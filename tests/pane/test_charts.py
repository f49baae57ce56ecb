"""The usage chart's geometry (keys/charts.py)."""

from datetime import date, timedelta

import pytest

from keys.charts import NARROW, WIDE, _nice_top, usage_chart
from keys.selectors import TypeUsage, UsageReport

DAYS = [date(2026, 11, 1) + timedelta(days=n) for n in range(30)]


def report(*per_day_lists: list[int]) -> UsageReport:
    types = [TypeUsage(f"type {n}", {"succeeded": sum(p)}, p) for n, p in enumerate(per_day_lists)]
    return UsageReport(DAYS, sorted(types, key=lambda t: -t.total))


@pytest.mark.parametrize(("peak", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (10, 10), (11, 20), (4999, 5000)])
def test_axis_top_is_a_round_number_at_or_above_the_peak(peak, top):
    assert _nice_top(peak) == top


@pytest.mark.parametrize("size", [WIDE, NARROW])
def test_bars_stack_to_the_day_total_and_stay_inside_the_plot(size):
    chart = usage_chart(report([5] * 30, [0] * 29 + [15]), size)
    newest = max(b.x for b in chart.bars)
    last_day = [b for b in chart.bars if b.x == newest]
    assert [b.series for b in last_day] == [0, 1]  # busiest type at the bottom
    assert sum(b.height for b in last_day) == pytest.approx(chart.baseline - 12)  # 20 of 20: the full plot
    assert all(chart.plot_left <= b.x and b.x + b.width <= chart.plot_right for b in chart.bars)
    assert all(b.y >= 12 - 1e-9 and b.height > 0 for b in chart.bars)
    assert last_day[1].title == "2026-11-30, type 1: 15 calls"


def test_more_types_than_colours_share_one_series():
    chart = usage_chart(report(*[[n + 1] * 30 for n in range(8)]))
    assert [name for _, name in chart.legend][-1] == "3 other types"
    assert {b.series for b in chart.bars} == set(range(6))


def test_day_labels_every_week_ending_at_the_newest_day():
    chart = usage_chart(report([1] * 30))
    assert [d.label for d in chart.days] == ["Nov 2", "Nov 9", "Nov 16", "Nov 23", "Nov 30"]
    assert (chart.days[-1].anchor, chart.days[-1].x) == ("end", chart.plot_right)


def test_an_empty_report_draws_no_bars():
    chart = usage_chart(UsageReport(DAYS, []))
    assert chart.bars == []
    assert [t.label for t in chart.ticks] == ["0", "1"]


def test_a_half_that_is_not_whole_is_labelled_as_it_is():
    assert [t.label for t in usage_chart(report([5] * 30)).ticks] == ["0", "2.5", "5"]
    assert [t.label for t in usage_chart(report([1500] * 30)).ticks] == ["0", "1,000", "2,000"]
