"""Cost per unit of business: a unit's north-star metric measured by a real Prometheus over the billed
period, shown on its invoice and in the finance summary, month over month with the flag for cost that
grew faster than the business."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from chargeback.errors import NorthStarError
from chargeback.outputs.history import month_over_month, read_previous
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.invoices import build_invoices
from chargeback.rate.north_star import change, cost_per_unit, period_query
from chargeback.run import run_period
from pool_demo.local_prometheus import BINARY_ENV, LocalPrometheus, backfill
from pool_demo.synthetic import closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.prometheus import require_prometheus

pytestmark = pytest.mark.prometheus

NOW = dt.datetime(2026, 10, 1, 8, 40, tzinfo=dt.UTC)
PERIOD = Period.month_to_date(NOW)  # 2026-10-01 00:00 – 08:00
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DI = "business-units/data-insight.yaml"


def orders() -> tuple[np.ndarray, np.ndarray]:
    """A shop counter scraped every minute from 00:00, 10 orders a minute: 4,800 in the eight hours."""
    times = START.timestamp() + 60.0 * np.arange(0, 9 * 60)
    return times, 10.0 * np.arange(0, 9 * 60)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_prometheus()
    work = tmp_path_factory.mktemp("north-star")
    source = work / "scenario.om"
    extra = [
        ("shop_orders_total", "counter", "Orders.", {"namespace": "di-api", "shop": "north"}, orders()),
        ("shop_orders_total", "counter", "Orders.", {"namespace": "di-api", "shop": "south"}, orders()),
    ]
    scenario = closed_form_scenario("dc1", with_unpriced_storage=False)
    write_openmetrics(source, [scenario, other_cluster_scenario("dc2")], extra)
    backfill(source, work / "tsdb")
    with LocalPrometheus(work / "tsdb") as server:
        yield server.url


def catalog_with(tmp: Path, query: str) -> Path:
    catalog = copy_example(tmp)
    edit_yaml(catalog / DI, lambda doc: doc["north_star"].__setitem__("query", query))
    return catalog


def test_the_query_covers_exactly_the_billed_hours() -> None:
    query, at = period_query("sum(increase(x[$__range]))", PERIOD, "2.42.0")
    assert query == "sum(increase(x[28799999ms]))"  # closed range: [start, end - 1 ms]
    assert at == dt.datetime(2026, 10, 1, 7, 59, 59, 999000, tzinfo=dt.UTC)
    # Prometheus 3's ranges are left-open: (start - 1 ms, end - 1 ms] keeps the sample taken at the start.
    assert period_query("sum(increase(x[$__range]))", PERIOD, "3.5.0")[0] == "sum(increase(x[28800000ms]))"


def test_invoice_shows_the_volume_and_the_cost_per_order(prometheus: str, tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, "sum(increase(shop_orders_total[$__range]))")
    run = run_period(PERIOD, catalog, prometheus)
    invoices = {doc.business_unit.id: doc for doc in build_invoices(run.chargeback)}
    star = invoices["data-insight"].model_dump(mode="json")["north_star"]
    total = invoices["data-insight"].total
    assert total > 0
    # Two shops × 10 orders a minute × 480 minutes.
    assert (star["name"], star["unit"], star["volume"]) == ("reports generated", "report", "9600.00")
    assert star["cost_per_unit"] == str((total / 9600).quantize(Decimal("0.0001")))
    window = "28800000ms" if os.environ.get(BINARY_ENV) else "28799999ms"  # Prometheus 3 / Debian's 2.42
    assert star["query"] == f"sum(increase(shop_orders_total[{window}]))"
    # The other units' metrics are not in this Prometheus: no figure, a warning, never a cost per zero units.
    assert invoices["platform"].north_star is not None
    assert invoices["platform"].north_star.volume is None
    assert invoices["platform"].north_star.cost_per_unit is None
    assert any("north star of platform: no series for 2026-10" in w for w in run.warnings)
    html = report_files(run.chargeback)["invoices/data-insight.html"]
    assert f"Cost per report (reports generated): CNY {star['cost_per_unit']} for 9,600 reports generated.</p>" in html


def test_month_over_month_flags_cost_growing_faster_than_the_business(prometheus: str, tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, "sum(increase(shop_orders_total[$__range]))")
    run = run_period(PERIOD, catalog, prometheus)
    invoices = build_invoices(run.chargeback)
    october = next(doc for doc in invoices if doc.business_unit.id == "data-insight")
    assert october.north_star is not None
    # September: 80 % of October's cost for 12,000 orders (October has 9,600: cost +25 %, orders −20 %).
    september = tmp_path / "2026-09" / "invoices"
    september.mkdir(parents=True)
    document = october.model_copy(
        update={
            "period": "2026-09",
            "total": (october.total * Decimal("0.8")).quantize(Decimal("0.01")),
            "north_star": october.north_star.model_copy(update={"volume": Decimal("12000.00")}),
        }
    )
    (september / "data-insight.json").write_text(document.to_json(), encoding="utf-8")
    previous = read_previous(tmp_path / "2026-09", PERIOD, "CNY", explicit=True)
    assert previous is not None and previous.north_star == {"data-insight": Decimal("12000.00")}
    row = next(r for r in month_over_month(previous, invoices)["units"] if r["id"] == "data-insight")
    moved = row["north_star"]
    assert moved["cost_grew_faster"] is True
    assert moved["volume_change_share"] == "-0.2000"
    assert Decimal(moved["cost_change_share"]) == pytest.approx(Decimal("0.25"), abs=Decimal("0.0002"))
    summary = report_files(run.chargeback, previous)["finance-summary.html"]
    assert "<h2>Cost per unit of business</h2>" in summary
    assert "cost grew faster than reports generated" in summary
    html = report_files(run.chargeback, previous)["invoices/data-insight.html"]
    before = (document.total / 12000).quantize(Decimal("0.0001"))
    assert f"9,600 reports generated. 2026-09: CNY {before} per report (" in html
    assert (
        'against reports generated -20.0 % <strong class="bad">— cost grew faster than reports generated</strong>'
        in html
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sum(increase(shop_orders_total[$__range])", "Prometheus refused the query"),
        ("increase(shop_orders_total[$__range])", "returned 2 series for 2026-10; it must give one number"),
        ("-sum(increase(shop_orders_total[$__range]))", "not a volume"),
    ],
)
def test_a_bad_north_star_query_names_the_unit_file(prometheus: str, tmp_path: Path, query: str, message: str) -> None:
    catalog = catalog_with(tmp_path, query)
    with pytest.raises(NorthStarError) as caught:
        run_period(PERIOD, catalog, prometheus)
    assert f"{catalog / DI}: north_star.query: " in str(caught.value)
    assert message in str(caught.value)


def test_change_is_closed_form() -> None:
    assert cost_per_unit(Decimal("100"), Decimal("3")) == Decimal("33.3333")
    assert cost_per_unit(Decimal("100"), Decimal("0")) is None
    grew = change(Decimal("1000"), Decimal("500"), Decimal("1100"), Decimal("525"))
    assert grew == {
        "previous_volume": "500",
        "previous_cost_per_unit": "2.0000",
        "cost_change_share": "0.1000",
        "volume_change_share": "0.0500",
        "cost_per_unit_change_share": "0.0476",
        "cost_grew_faster": True,
    }
    slower = change(Decimal("1000"), Decimal("500"), Decimal("1050"), Decimal("600"))
    assert slower["cost_grew_faster"] is False and slower["cost_per_unit_change_share"] == "-0.1250"
    unknown = change(Decimal("1000"), None, Decimal("1100"), Decimal("525"))
    assert unknown["cost_grew_faster"] is False and unknown["volume_change_share"] is None
