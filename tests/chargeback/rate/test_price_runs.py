"""A line is split at a rate version only where that version changed the line's price.

The example rate card with its 2026-10-15 version changed to raise CPU from 0.24 to 0.30 per core-hour and
nothing else (cold storage kept at 0.30): memory, storage and the shared namespace's lines stay one line
for the month; CPU lines split in two, each part carrying its version, in line_items.csv, the invoice and
FOCUS; totals tie to the cent with the closed-form figures.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from chargeback.outputs.chart_data import daily_costs
from chargeback.outputs.csv_tables import csv_records
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.result import Chargeback, charge
from pool_catalog import load_catalog
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.usage_frames import steady, usage_frame

OCT = Period.parse("2026-10")
START = OCT.start
FIRST, SECOND = "2026-01-01T00:00:00Z", "2026-10-15T00:00:00Z"
BEFORE, AFTER = 14 * 24, 17 * 24  # hours of October before and from 2026-10-15 00:00 UTC
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@pytest.fixture(scope="module")
def chargeback(tmp_path_factory: pytest.TempPathFactory) -> Chargeback:
    directory = copy_example(tmp_path_factory.mktemp("cpu-only"))

    def cpu_only(doc) -> None:
        second = doc["versions"][1]
        second["cpu"]["price"] = "0.30"
        second["storage"]["cold"]["price"] = "0.30"

    edit_yaml(directory / "rates.yaml", cpu_only)
    rows = steady("di-api", "cpu", 2.0, START, OCT.hours)
    rows += steady("di-api", "memory", 8.0, START, OCT.hours)
    rows += steady("di-batch", "storage", 600.0, START, OCT.hours, tier="cold")
    rows += steady("monitoring", "memory", 4.0, START, OCT.hours)  # shared: split evenly across the units
    return charge(usage_frame(rows), load_catalog(directory), OCT)


@pytest.fixture(scope="module")
def files(chargeback: Chargeback) -> dict[str, str]:
    return report_files(chargeback)


def test_unchanged_prices_stay_one_line_and_the_changed_one_splits_with_its_versions(
    chargeback: Chargeback, files: dict[str, str]
) -> None:
    rows = [r for r in csv_records(files["line_items.csv"]) if r["business_unit"] == "data-insight"]
    by_line = {(r["namespace"], r["resource"]): [] for r in rows}
    for r in rows:
        by_line[(r["namespace"], r["resource"])].append(
            (r["rate_effective_from"], r["usage_quantity"], r["unit_price"], r["amount"])
        )
    # 2 cores × 336 h × 0.24 = 161.28; 2 × 408 h × 0.30 = 244.80
    assert by_line[("di-api", "cpu")] == [
        (FIRST, "672.000000000", "0.24", "161.28"),
        (SECOND, "816.000000000", "0.30", "244.80"),
    ]
    # 8 GiB × 744 h × 0.032 = 190.464 → 190.46, one line rounded once (split at the version it was 86.02 +
    # 104.45 = 190.47: one cent of rounding more, on a price that did not change)
    assert by_line[("di-api", "memory")] == [(FIRST, "5952.000000000", "0.032", "190.46")]
    # 600 GiB × 744 h / 730 = 611.506849315 GiB-months × 0.30 = 183.452… → 183.45
    assert by_line[("di-batch", "storage")] == [(FIRST, "446400.000000000", "0.30", "183.45")]
    assert [line[0] for line in by_line[("monitoring", "memory")]] == [FIRST]
    every = csv_records(files["line_items.csv"])
    assert len(every) == 2 + 1 + 1 + 4  # cpu in two parts, memory, storage, monitoring for each of four units
    monitoring = [r for r in every if r["namespace"] == "monitoring"]
    # 4 GiB × 744 h × 0.032 = 95.232 → 95.23, split to the cent
    assert sum(Decimal(r["amount"]) for r in monitoring) == Decimal("95.23")
    shared = chargeback.lines[chargeback.lines["namespace"] == "monitoring"]
    assert set(shared["charge_period_start"]) == {START} and set(shared["charge_period_end"]) == {OCT.end}
    assert sum(Decimal(r["amount"]) for r in every) == Decimal("161.28") + Decimal("244.80") + Decimal(
        "190.46"
    ) + Decimal("183.45") + Decimal("95.23")


def test_invoice_focus_and_daily_costs_follow_the_same_lines(chargeback: Chargeback, files: dict[str, str]) -> None:
    lines = csv_records(files["line_items.csv"])
    for unit in ("community-services", "data-insight", "edge-security", "platform"):
        invoice = json.loads(files[f"invoices/{unit}.json"])
        mine = [r for r in lines if r["business_unit"] == unit]
        assert Decimal(invoice["total"]) == sum(Decimal(r["amount"]) for r in mine), unit
        assert sum(daily_costs(chargeback)[unit], Decimal(0)) == Decimal(invoice["total"]), unit
    invoice = json.loads(files["invoices/data-insight.json"])
    assert invoice["rate_versions"] == [FIRST, SECOND]
    di_api = next(ns for ns in invoice["namespaces"] if ns["namespace"] == "di-api")
    assert [(line["resource"], line["rate_effective_from"], line["amount"]) for line in di_api["lines"]] == [
        ("cpu", FIRST, "161.28"),
        ("cpu", SECOND, "244.80"),
        ("memory", FIRST, "190.46"),
    ]
    focus = csv_records(files["focus.csv"])
    assert len(focus) == len(lines)
    cpu = [(r["x_RateEffectiveFrom"], r["BilledCost"]) for r in focus if r["x_Resource"] == "cpu"]
    assert cpu == [(FIRST, "161.28"), (SECOND, "244.80")]


def test_a_price_changed_and_changed_back_splits_at_both_versions(tmp_path: Path) -> None:
    """Adjacent versions only: 0.24, then 0.30 for a day, then 0.24 again gives three CPU lines."""
    directory = copy_example(tmp_path)

    def third_version(doc) -> None:
        doc["versions"][1]["cpu"]["price"] = "0.30"
        third = json.loads(json.dumps(doc["versions"][0], default=str))
        third["effective_from"] = "2026-10-16T00:00:00Z"
        third["storage"]["cold"]["price"] = "0.24"
        doc["versions"].append(third)

    edit_yaml(directory / "rates.yaml", third_version)
    frame = usage_frame(steady("di-api", "cpu", 1.0, START, OCT.hours))
    lines = charge(frame, load_catalog(directory), OCT).lines
    assert [(str(q), str(p)) for q, p in zip(lines["usage_quantity"], lines["unit_price"], strict=True)] == [
        ("336.000000000", "0.24"),
        ("24.000000000", "0.30"),
        ("384.000000000", "0.24"),
    ]
    assert list(lines["charge_period_start"].dt.strftime("%d")) == ["01", "15", "16"]
    assert sum(lines["amount"], Decimal(0)) == cents(Decimal(336 + 384) * Decimal("0.24")) + Decimal("7.20")
    assert lines["charge_period_end"].iloc[-1] == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
