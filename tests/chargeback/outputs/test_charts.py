"""Report charts: well-formed SVG, bar lengths and line heights in closed form, escaped labels, and daily
costs that add up to each invoice total."""

from __future__ import annotations

import datetime as dt
import json
import random
import xml.etree.ElementTree as ET
from decimal import Decimal
from fractions import Fraction

import pytest

from chargeback.outputs import charts
from chargeback.outputs.chart_data import AllocationUse, allocation_use, daily_costs, period_days, spread
from chargeback.outputs.html import MAX_SERIES, css_string, html_environment, top_series
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.rating import allocate
from chargeback.rate.result import charge
from pool_catalog import Catalog, load_catalog
from tests.chargeback.outputs.test_outputs import month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.usage_frames import steady, usage_frame

SVG = "{http://www.w3.org/2000/svg}"
OCT = Period.parse("2026-10")
START = OCT.start
HOSTILE = '<script>alert("x")</script> & "quotes"'


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text and title.get("id") in root.get("aria-labelledby", "").split()
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_stacked_bars_are_proportional_to_amounts() -> None:
    bars = [
        charts.StackedBar("alpha", [charts.Segment("cpu", Decimal("30")), charts.Segment("memory", Decimal("10"))]),
        charts.StackedBar("beta", [charts.Segment("cpu", Decimal("20"))]),
    ]
    root = parse(charts.stacked_bars(bars, title="t", description="d", chart_id="c", currency="CNY", places=2))
    rects = [r for r in root.iter(f"{SVG}rect") if r.get("data-value")]
    geometry = [(r.get("data-value"), float(r.get("x")), float(r.get("width"))) for r in rects]
    # The longest bar (alpha, 40) fills the plot; the others scale by amount / 40.
    full = charts.PLOT_WIDTH
    left = charts.LABEL_WIDTH
    assert geometry == [
        ("30", left, pytest.approx(full * 30 / 40, abs=0.005)),
        ("10", pytest.approx(left + full * 30 / 40, abs=0.005), pytest.approx(full * 10 / 40, abs=0.005)),
        ("20", left, pytest.approx(full * 20 / 40, abs=0.005)),
    ]
    labels = texts(root)
    assert {"alpha", "beta", "40.00", "20.00", "cpu", "memory"} <= set(labels)
    # cpu keeps one style in both bars, so the legend reads the same for each.
    assert rects[0].get("fill") == rects[2].get("fill") != rects[1].get("fill")


def test_a_credit_is_drawn_back_from_the_end_of_its_bar_and_the_figure_is_net() -> None:
    """A provider's bar: its resources (80) drawn full length, the credit for capabilities recovered from
    consumers (-30) drawn dashed over the end of it, and 50.00 net written after the bar: the invoice total."""
    bars = [
        charts.StackedBar(
            "provider", [charts.Segment("cpu", Decimal("80")), charts.Segment("Recovered (credit)", Decimal("-30"))]
        ),
        charts.StackedBar(
            "consumer", [charts.Segment("cpu", Decimal("20")), charts.Segment("Consumed", Decimal("30"))]
        ),
    ]
    root = parse(charts.stacked_bars(bars, title="t", description="d", chart_id="c", currency="CNY", places=2))
    full, left = charts.PLOT_WIDTH, charts.LABEL_WIDTH
    (credit,) = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "credit"]
    assert credit.get("data-value") == "-30" and credit.get("stroke-dasharray")
    assert float(credit.get("x")) == pytest.approx(left + full * 50 / 80, abs=0.005)
    assert float(credit.get("width")) == pytest.approx(full * 30 / 80, abs=0.005)
    groups = [g.get("aria-label") for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]
    assert groups == ["provider: CNY 50.00", "consumer: CNY 50.00"]
    labels = texts(root)
    assert {"50.00 net", "50.00", "Recovered (credit)", "Consumed", "cpu"} <= set(labels)


def test_grayscale_styles_differ_by_more_than_hue() -> None:
    """Eight segment kinds: four lightness steps, then the same hatched; every style distinct."""
    bars = [charts.StackedBar("u", [charts.Segment(f"k{i}", Decimal(1)) for i in range(8)])]
    svg = charts.stacked_bars(bars, title="t", description="d", chart_id="g", currency="CNY", places=2)
    fills = [r.get("fill") for r in parse(svg).iter(f"{SVG}rect") if r.get("data-value")]
    assert len(set(fills)) == 8
    assert sum(fill.startswith("url(#g-hatch-") for fill in fills) == 4
    luminance = [sum(int(f[i : i + 2], 16) for i in (1, 3, 5)) for f in charts.FILLS]
    assert luminance == sorted(luminance) and len(set(luminance)) == 4


def test_daily_trend_heights_are_closed_form() -> None:
    days = [dt.date(2026, 10, d) for d in (1, 2, 3)]
    values = [Decimal(0), Decimal(40), Decimal(80)]  # axis tops out at 100 (next of 1, 2, 2.5, 5 × 10^k)
    svg = charts.daily_trend([("alpha", values)], days, title="t", description="d", chart_id="trend",
                             currency="CNY", places=2)  # fmt: skip
    root = parse(svg)
    points = [tuple(map(float, p.split(","))) for p in root.find(f".//{SVG}polyline").get("points").split()]
    left, plot_width, bottom, plot_height = 80, charts.WIDTH - 280, 214, 200
    heights = [bottom - plot_height * v / 100 for v in (0, 40, 80)]
    assert points == [(left, heights[0]), (left + plot_width / 2, heights[1]), (left + plot_width, heights[2])]
    assert texts(root)[:5] == ["0.00", "25.00", "50.00", "75.00", "100.00"]
    assert root.find(f".//{SVG}polygon") is not None, "one series is drawn as an area"


def test_several_series_differ_by_dash_pattern() -> None:
    days = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
    series = [(f"unit {i}", [Decimal(i), Decimal(i)]) for i in range(1, 4)]
    root = parse(charts.daily_trend(series, days, title="t", description="d", chart_id="m", currency="CNY", places=0))
    dashes = [line.get("stroke-dasharray") for line in root.iter(f"{SVG}polyline")]
    assert len(set(dashes)) == 3 and root.find(f".//{SVG}polygon") is None


@pytest.mark.parametrize(("value", "ceiling"), [("0.37", "0.5"), ("1234", "2000"), ("2.1", "2.5"), ("0", "1")])
def test_axis_ceiling_is_a_round_number(value: str, ceiling: str) -> None:
    assert charts._nice_ceiling(Decimal(value)) == Decimal(ceiling)


def test_allocation_bars_show_utilization_as_the_filled_share() -> None:
    levels = [charts.Level("cpu", Decimal(24), Decimal(6), "cores", group="Unit A"),
              charts.Level("memory", Decimal(96), Decimal(8), "GiB", group="Unit A")]  # fmt: skip
    root = parse(charts.allocation_bars(levels, title="t", description="d", chart_id="a"))
    allocated = [float(r.get("width")) for r in root.iter(f"{SVG}rect") if r.get("class") == "allocated"]
    used = [float(r.get("width")) for r in root.iter(f"{SVG}rect") if r.get("class") == "used"]
    assert allocated == [charts.LEVEL_PLOT_WIDTH] * 2
    assert used == [
        pytest.approx(charts.LEVEL_PLOT_WIDTH / 4, abs=0.005),
        pytest.approx(charts.LEVEL_PLOT_WIDTH / 12, abs=0.005),
    ]
    assert "6.00 of 24.00 cores (25.0 %)" in texts(root) and texts(root).count("Unit A") == 1


def test_hostile_labels_are_escaped_and_the_markup_survives_autoescape() -> None:
    bars = [charts.StackedBar(HOSTILE, [charts.Segment(HOSTILE, Decimal(1))])]
    made = [
        charts.stacked_bars(bars, title=HOSTILE, description=HOSTILE, chart_id=HOSTILE, currency="CNY", places=2),
        charts.daily_trend(
            [(HOSTILE, [Decimal(1)])],
            [dt.date(2026, 10, 1)],
            title=HOSTILE,
            description=HOSTILE,
            chart_id="t",
            currency="CNY",
            places=2,
        ),
        charts.allocation_bars(
            [charts.Level(HOSTILE, Decimal(2), Decimal(1), "cores", group=HOSTILE)],
            title=HOSTILE,
            description=HOSTILE,
            chart_id="a",
        ),
    ]
    for svg in made:
        assert "<script" not in svg and 'x")' not in svg
        root = parse(svg)  # the parser undoes the escaping: the reader sees the label as written
        assert root.find(f"{SVG}title").text == HOSTILE
        assert any(HOSTILE[:20] in text for text in texts(root))
        assert all(c.isalnum() or c == "-" for c in root.get("id"))
        rendered = html_environment("CNY").from_string("<div>{{ chart }}</div>").render(chart=svg)
        assert rendered == f"<div>{svg}</div>", "the chart is Markup: autoescape must not escape it twice"


def test_hostile_unit_name_in_report_charts(catalog: Catalog) -> None:
    unit = catalog.units[1].model_copy(update={"display_name": HOSTILE})
    hostile = catalog.model_copy(update={"units": [unit if u.id == unit.id else u for u in catalog.units]})
    files = report_files(charge(usage_frame(steady("di-api", "cpu", 1.0, START, 30, allocated=2.0)), hostile, OCT))
    for name in ("finance-summary.html", f"invoices/{unit.id}.html"):
        assert "<script>" not in files[name] and "&lt;script&gt;" in files[name], name
        assert files[name].count("<svg") >= 2, name


def test_daily_costs_follow_the_price_in_force_each_day(catalog: Catalog) -> None:
    # 730 GiB of cold storage all month: 24 h × 730 GiB-h / 730 h × 0.30 = 7.20 a day until the new
    # rate card of 10-15 (0.24: 5.76 a day); 1 core for 48 h: 24 × 0.24 = 5.76 on each of the first two days.
    rows = steady("di-batch", "storage", 730.0, START, OCT.hours, tier="cold") + steady("di-api", "cpu", 1.0, START, 48)
    chargeback = charge(usage_frame(rows), catalog, OCT)
    days = daily_costs(chargeback)["data-insight"]
    assert len(days) == len(period_days(chargeback)) == 31
    expected = [Decimal("12.96")] * 2 + [Decimal("7.20")] * 12 + [Decimal("5.76")] * 17
    assert days == expected
    invoice = json.loads(report_files(chargeback)["invoices/data-insight.json"])
    assert sum(days) == Decimal(invoice["total"]) == Decimal("210.24")


def test_daily_costs_add_up_to_every_invoice_total(catalog: Catalog) -> None:
    """Shared splits, two price versions, a scrape gap, an unallocated namespace: days still add up exactly."""
    chargeback = charge(usage_frame(month_rows()), catalog, OCT)
    files = report_files(chargeback)
    daily = daily_costs(chargeback)
    for name, content in files.items():
        if name.startswith("invoices/") and name.endswith(".json"):
            invoice = json.loads(content)
            days = daily.get(invoice["business_unit"]["id"], [])
            assert sum(days, Decimal(0)) == Decimal(invoice["total"]), name
            assert all(day == day.quantize(Decimal("0.01")) for day in days), "days are whole fen"


def test_allocation_use_averages_over_the_period(catalog: Catalog) -> None:
    # cpu quota 24 cores all month, 6 used; memory quota 96 GiB for half the month (372 h), 8 GiB used.
    rows = steady("di-api", "cpu", 6.0, START, OCT.hours, allocated=24.0)
    rows += steady("di-api", "memory", 8.0, START, OCT.hours // 2, allocated=96.0)
    rows += steady("monitoring", "memory", 4.0, START, OCT.hours, allocated=8.0)  # shared: no single unit
    levels = allocation_use(charge(usage_frame(rows), catalog, OCT))
    assert levels == {
        "data-insight": [
            AllocationUse("cpu", "", Decimal("24.000"), Decimal("6.000"), "cores"),
            AllocationUse("memory", "", Decimal("48.000"), Decimal("4.000"), "GiB"),
        ]
    }


def test_spread_splits_like_rating_allocate() -> None:
    """The integer split of daily costs gives the same whole fen as the exact split of shared costs."""
    generator = random.Random(20261001)
    for _ in range(200):
        weights = [generator.choice([0, 1, 7, 10**9, generator.randrange(10**15)]) for _ in range(31)]
        weights[generator.randrange(31)] += 1  # never all zero
        amount = Decimal(generator.randrange(10**7)).scaleb(-2)
        split = spread(amount, weights, Decimal("0.01"))
        assert split == allocate(amount, [Fraction(w) for w in weights], Decimal("0.01"))
        assert sum(split) == amount
    assert spread(Decimal("1.00"), [1, 1, 1], Decimal("0.01")) == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]


def test_many_units_keep_the_largest_lines_and_sum_the_rest() -> None:
    series = [(f"unit {i:02d}", [Decimal(i), Decimal(1)]) for i in range(1, 10)]
    kept = top_series(series)
    assert [label for label, _ in kept] == ["unit 09", "unit 08", "unit 07", "unit 06", "unit 05", "Other units (4)"]
    assert kept[-1][1] == [Decimal(1 + 2 + 3 + 4), Decimal(4)]
    assert len(kept) == MAX_SERIES == len(charts.DASHES)
    assert top_series(series[:3]) == series[:3]


def test_page_header_text_cannot_leave_its_css_string() -> None:
    quoted = css_string('Evil "Co" </style><script>x</script> 数据')
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == '"' and '"' not in inner and "<" not in inner and "\\" in inner
    assert "数据" in inner, "letters of any script stay readable"
    assert css_string("Co. Ltd") == '"Co\\2e  Ltd"', "an escape ends with one space, which CSS drops"
