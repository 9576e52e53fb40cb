"""Rating: hand-built usage frames with known quantities, checked to the cent against the example rate card.

Prices of catalog/rates.yaml used here: cpu 0.24/core-hour, memory 0.032/GiB-hour, egress 0.50/GiB,
gpu 11.50/gpu-hour, load balancer 0.30/lb-hour, storage hot 0.90 and archive 0.08 per GiB-month,
cold 0.30 per GiB-month until 2026-10-15 00:00 UTC and 0.24 from then on. A month is 730 hours.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from chargeback.errors import PeriodError, RatingError
from chargeback.period import Period
from chargeback.rate.rating import SHARED, UNALLOCATED, allocate
from chargeback.rate.result import Chargeback, charge
from pool_catalog import Catalog, load_catalog
from pool_catalog.models import BillingMode
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.usage_frames import row, steady, usage_frame

OCT = Period.parse("2026-10")
START = OCT.start
PRICE_CHANGE = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
HOURS_BEFORE_CHANGE = 14 * 24  # 336
HOURS_AFTER_CHANGE = 17 * 24  # 408


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


def lines_of(result: Chargeback, unit: str, namespace: str | None = None) -> pd.DataFrame:
    lines = result.lines[result.lines["business_unit"] == unit]
    return lines if namespace is None else lines[lines["namespace"] == namespace]


def total(lines: pd.DataFrame) -> Decimal:
    return sum(lines["amount"], Decimal(0))


def test_period_parsing() -> None:
    assert (OCT.start, OCT.end, OCT.hours) == (START, dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 744)
    assert Period.parse("2026-12").end == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(PeriodError, match="month 13: months run from 01 to 12"):
        Period.parse("2026-13")
    with pytest.raises(PeriodError, match="write it as YYYY-MM"):
        Period.parse("October")


def test_mid_month_price_change_gives_one_line_per_price_version(catalog: Catalog) -> None:
    frame = usage_frame(steady("pf-credit", "storage", 100.0, START, OCT.hours, tier="cold"))
    lines = charge(frame, catalog, OCT).lines
    assert list(lines["rate_effective_from"].dt.strftime("%Y-%m-%d")) == ["2026-01-01", "2026-10-15"]
    assert list(lines["usage_quantity"]) == [Decimal(100 * HOURS_BEFORE_CHANGE), Decimal(100 * HOURS_AFTER_CHANGE)]
    # 33,600 GiB-hours / 730 = 46.027397260 GiB-months × 0.30 = 13.808… → 13.81
    # 40,800 GiB-hours / 730 = 55.890410959 GiB-months × 0.24 = 13.413… → 13.41
    assert list(lines["billed_quantity"]) == [Decimal("46.027397260"), Decimal("55.890410959")]
    assert list(lines["unit"]) == ["GiB-month", "GiB-month"]
    assert list(lines["unit_price"]) == [Decimal("0.30"), Decimal("0.24")]
    assert list(lines["amount"]) == [Decimal("13.81"), Decimal("13.41")]
    assert lines["charge_period_start"].iloc[1] == pd.Timestamp(PRICE_CHANGE)
    assert lines["charge_period_end"].iloc[0] == pd.Timestamp(PRICE_CHANGE)


def _mode_frame() -> pd.DataFrame:
    first = steady("di-api", "cpu", 2.0, START, 10, requested=4.0, allocated=24.0)
    second = steady("di-api", "cpu", 5.0, START + dt.timedelta(hours=10), 10, requested=4.0, allocated=24.0)
    egress = steady("di-api", "egress", 1.0, START, 20)  # no request: every mode bills use
    return usage_frame(first + second + egress)


@pytest.mark.parametrize(
    ("mode", "cpu_hours", "cpu_amount"),
    [
        ("usage", "70", "16.80"),  # 2×10 + 5×10 core-hours used
        ("request", "80", "19.20"),  # 4×20 core-hours requested
        ("max", "90", "21.60"),  # max(2,4)×10 + max(5,4)×10
    ],
)
def test_billing_modes(catalog: Catalog, mode: str, cpu_hours: str, cpu_amount: str) -> None:
    result = charge(_mode_frame(), catalog, OCT, mode)
    assert result.billing_mode is BillingMode(mode)
    lines = lines_of(result, "data-insight", "di-api").set_index("resource")
    assert lines.loc["cpu", "billed_quantity"] == Decimal(cpu_hours)
    assert lines.loc["cpu", "usage_quantity"] == Decimal(70)  # measured use, whatever the mode
    assert lines.loc["cpu", "amount"] == Decimal(cpu_amount)
    assert lines.loc["egress", "amount"] == Decimal("10.00")  # 20 GiB × 0.50
    assert set(result.lines["billing_mode"]) == {mode}


def test_billing_mode_defaults_to_rates_yaml_and_rejects_unknown(catalog: Catalog) -> None:
    assert charge(_mode_frame(), catalog, OCT).billing_mode is BillingMode.USAGE
    with pytest.raises(RatingError, match="billing mode 'peak' is unknown: use one of usage, request, max"):
        charge(_mode_frame(), catalog, OCT, "peak")


def test_rounding_is_half_even_per_line_and_total_is_sum_of_rounded_lines(catalog: Catalog) -> None:
    frame = usage_frame(
        [
            row(START, "di-api", "egress", 0.25),  # 0.125 → 0.12 (half-even keeps the even cent)
            row(START, "di-batch", "egress", 0.75),  # 0.375 → 0.38
            row(START, "cs-miniapp", "egress", 0.25),  # 0.125 → 0.12 on its own invoice
        ]
    )
    result = charge(frame, catalog, OCT)
    di = lines_of(result, "data-insight").set_index("namespace")
    assert di.loc["di-api", "amount"] == Decimal("0.12")
    assert di.loc["di-batch", "amount"] == Decimal("0.38")
    assert total(di) == Decimal("0.50")  # not round(0.125 + 0.375) computed otherwise
    assert total(lines_of(result, "community-services")) == Decimal("0.12")


def test_shared_namespaces_split_proportional_and_even(catalog: Catalog) -> None:
    hours = 10
    frame = usage_frame(
        steady("di-api", "cpu", 10.0, START, hours)  # Data Insight's own cost: 100 core-h = 24.00
        + steady("cs-miniapp", "cpu", 5.0, START, hours)  # Community Services': 50 core-h = 12.00
        + steady("ingress-nginx", "cpu", 1.0, START, hours)  # 10 core-h = 2.40, proportional
        + [row(START, "monitoring", "egress", 0.06)]  # 0.03, even across 4 units
    )
    result = charge(frame, catalog, OCT)
    ingress = result.lines[result.lines["namespace"] == "ingress-nginx"].set_index("business_unit")
    # Units without own cost take no part of a proportional split.
    assert set(ingress.index) == {"data-insight", "community-services"}
    assert ingress.loc["data-insight", "amount"] == Decimal("1.60")  # 24 / 36 of 2.40
    assert ingress.loc["community-services", "amount"] == Decimal("0.80")
    assert ingress.loc["data-insight", "usage_quantity"] == Decimal("6.666666667")
    assert set(ingress["shared_split"]) == {"proportional"}
    monitoring = result.lines[result.lines["namespace"] == "monitoring"].set_index("business_unit")
    # Three cents over four units: largest remainder, ties to the unit listed first.
    assert monitoring["amount"].to_dict() == {
        "community-services": Decimal("0.01"),
        "data-insight": Decimal("0.01"),
        "edge-security": Decimal("0.01"),
        "platform": Decimal("0.00"),
    }
    assert set(monitoring["share"]) == {Decimal("0.25")}
    assert total(lines_of(result, "data-insight")) == Decimal("25.61")
    assert SHARED not in set(result.lines["business_unit"])
    assert total(result.lines) == Decimal("38.43")  # 24 + 12 + 2.40 + 0.03: splitting loses no cent


def _catalog_with_rates(tmp_path: Path, change) -> Catalog:
    directory = copy_example(tmp_path)
    edit_yaml(directory / "rates.yaml", change)
    return load_catalog(directory)


def test_shared_split_none_stays_unallocated_and_among_limits_units(tmp_path: Path) -> None:
    def change(doc) -> None:
        doc["shared_namespaces"][0]["among"] = ["data-insight", "platform"]
        doc["shared_namespaces"][1]["split"] = "none"

    catalog = _catalog_with_rates(tmp_path, change)
    frame = usage_frame(
        steady("di-api", "cpu", 10.0, START, 10)
        + steady("pf-identity", "cpu", 30.0, START, 10)  # Platform: 72.00
        + steady("cs-miniapp", "cpu", 5.0, START, 10)  # not among the sharers of ingress-nginx
        + steady("ingress-nginx", "cpu", 4.0, START, 10)  # 9.60 → 2.40 Data Insight, 7.20 Platform
        + steady("monitoring", "memory", 10.0, START, 10)  # 100 GiB-h = 3.20, not split
    )
    result = charge(frame, catalog, OCT)
    ingress = result.lines[result.lines["namespace"] == "ingress-nginx"].set_index("business_unit")["amount"]
    assert ingress.to_dict() == {"data-insight": Decimal("2.40"), "platform": Decimal("7.20")}
    monitoring = result.lines[result.lines["namespace"] == "monitoring"]
    assert list(monitoring["business_unit"]) == [UNALLOCATED]
    assert list(monitoring["amount"]) == [Decimal("3.20")]
    assert list(monitoring["shared_split"]) == [""]


def test_unowned_namespace_is_billed_to_unallocated(catalog: Catalog) -> None:
    frame = usage_frame(steady("sandbox-x", "memory", 2.0, START, 5))
    result = charge(frame, catalog, OCT)
    assert list(result.lines["business_unit"]) == [UNALLOCATED]
    assert list(result.lines["cost_center"]) == [""]
    assert list(result.lines["amount"]) == [Decimal("0.32")]  # 10 GiB-h × 0.032


def test_unscraped_hours_are_not_billed_but_reported(catalog: Catalog) -> None:
    rows = steady("di-api", "cpu", 1.0, START, 6)
    rows += [row(START + dt.timedelta(hours=6), "di-api", "cpu", float("nan"), coverage=0.0)]
    rows += [row(START + dt.timedelta(hours=7), "di-api", "cpu", 0.5, coverage=0.5)]
    result = charge(usage_frame(rows), catalog, OCT)
    assert list(result.lines["usage_quantity"]) == [Decimal("6.5")]
    coverage = result.coverage.set_index("namespace").loc["di-api"]
    assert (coverage["hours_seen"], coverage["hours_covered"], coverage["hours_in_period"]) == (8, 6.5, 744)


def test_missing_price_is_an_error_naming_resource_namespace_and_version(catalog: Catalog) -> None:
    versions = catalog.rates.sorted_versions()
    without_archive = versions[1].model_copy(
        update={"storage": {k: v for k, v in versions[1].storage.items() if k != "archive"}}
    )
    rates = catalog.rates.model_copy(update={"versions": [versions[0], without_archive]})
    broken = catalog.model_copy(update={"rates": rates})
    frame = usage_frame(steady("es-testbed", "storage", 50.0, PRICE_CHANGE, 2, tier="archive"))
    with pytest.raises(RatingError) as caught:
        charge(frame, broken, OCT)
    message = str(caught.value)
    assert "rates.yaml version effective 2026-10-15 00:00 has no price for storage tier 'archive'" in message
    assert "namespace 'es-testbed' (cluster dc1)" in message
    assert "storage.archive" in message


def test_hours_before_the_first_rate_version_are_refused(catalog: Catalog) -> None:
    december = Period.parse("2025-12")
    frame = usage_frame(steady("di-api", "cpu", 1.0, december.start, 2))
    with pytest.raises(RatingError, match="no price version in force at 2025-12-01T00:00:00"):
        charge(frame, catalog, december)


def test_unknown_storage_class_is_an_error_naming_namespace_and_class(catalog: Catalog) -> None:
    frame = usage_frame(
        steady("sandbox-x", "storage", 1.0, START, 2, tier="local-path")
        + steady("di-api", "storage", 1.0, START, 2, tier="hot")
    )
    with pytest.raises(RatingError) as caught:
        charge(frame, catalog, OCT)
    message = str(caught.value)
    assert "namespace 'sandbox-x' (cluster dc1) has volumes of storage class 'local-path'" in message
    assert "pool-hot (hot)" in message and "add the class as a storage tier in pool.yaml" in message
    assert "di-api" not in message


def test_usage_outside_the_period_is_refused(catalog: Catalog) -> None:
    frame = usage_frame(steady("di-api", "cpu", 1.0, OCT.end, 1))
    with pytest.raises(RatingError, match="outside 2026-10"):
        charge(frame, catalog, OCT)


def test_allocate_splits_exactly() -> None:
    from fractions import Fraction

    parts = allocate(Decimal("10.00"), [Fraction(1), Fraction(1), Fraction(1)], Decimal("0.01"))
    assert parts == [Decimal("3.34"), Decimal("3.33"), Decimal("3.33")]
    assert allocate(Decimal("7"), [Fraction(2), Fraction(1)], Decimal(1)) == [Decimal(5), Decimal(2)]
