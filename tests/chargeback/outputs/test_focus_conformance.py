"""focus.csv and correction FOCUS rows against the FinOps Foundation's FOCUS 1.4 data model (tests/support/
focus_model.py, every file as written) and, in the 1.3 layout `--focus-version 1.3` writes, against the FOCUS 1.3
requirements stated as MUST, for a unit's own lines, allocated charges of shared namespaces and correction rows.

Rules from FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec (specification/…):
- datasets/cost_and_usage/columns/*.md: presence of Mandatory columns, nullability, types;
  chargeclass.md (null unless a correction to a closed period, then "Correction");
  allocatedmethodid.md, allocatedresourceid.md, allocatedresourcename.md (null iff not an allocated charge),
  allocatedmethoddetails.md (JSON object, `Elements` of objects with a numeric AllocatedRatio, custom keys
  `x_`, the ratios of one origin charge add up to 1), allocatedtags.md (null iff not allocated; JSON object,
  no key of Tags repeated, values strings or true); tags.md (key-value JSON object);
  serviceprovidername.md, hostprovidername.md (not null).
- attributes/provider_calculated_split_cost_allocation_handling.md: allocated charges add up to the origin
  charge, dimensions and non-aggregatable metrics (unit prices) equal to the origin's, the origin's Tags kept.
- attributes/correction_handling.md: corrections in a later billing period, charge period as incurred,
  another InvoiceId than the original, no double counting (reversal + corrected row add up to the change).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from chargeback.ledger.documents import (
    chargeback_lines,
    correction_lines,
    differences,
    month_in_force,
    note_number,
)
from chargeback.ledger.store import Document, Issue
from chargeback.outputs.csv_tables import csv_text
from chargeback.outputs.focus import COLUMNS, columns_of, correction_rows, focus_rows, relayout
from chargeback.period import Period
from chargeback.rate.invoices import invoice_number
from chargeback.rate.result import Chargeback, charge
from pool_catalog import load_catalog
from tests.chargeback.outputs.test_outputs import FOCUS_REFERENCE, OCT, month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.focus_model import violations
from tests.support.usage_frames import usage_frame

DECEMBER = Period(2026, 12)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ALLOCATION = ("AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName")
PER_RECEIVER = {"BillingAccountId", "BillingAccountName", "InvoiceId", "AllocatedResourceId", "AllocatedResourceName"}
PER_RECEIVER |= {"AllocatedTags", "AllocatedMethodDetails"}
AGGREGATABLE = {"BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity"}


def spec() -> dict[str, dict[str, str]]:
    text = FOCUS_REFERENCE.read_bytes().decode("utf-8").replace("\r", "")
    return {r["Column"]: r for r in csv.DictReader(io.StringIO(text), delimiter="\t")}


def parse(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


@pytest.fixture(scope="module")
def original() -> Chargeback:
    return charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT)


@pytest.fixture(scope="module")
def normal(original: Chargeback) -> list[dict[str, str]]:
    return parse(csv_text(COLUMNS, focus_rows(original)))


_REPRICED: dict[str, Chargeback] = {}


def repriced(original: Chargeback) -> Chargeback:
    """The same month with the CPU price of the first rate version raised from 0.24 to 0.30."""
    if "cpu" not in _REPRICED:
        rates = original.catalog.rates
        first = rates.sorted_versions()[0]
        cpu = first.cpu.model_copy(update={"price": Decimal("0.30")})
        versions = [first.model_copy(update={"cpu": cpu}), *rates.sorted_versions()[1:]]
        catalog = original.catalog.model_copy(update={"rates": rates.model_copy(update={"versions": versions})})
        _REPRICED["cpu"] = charge(usage_frame(month_rows()), catalog, OCT)
    return _REPRICED["cpu"]


@pytest.fixture(scope="module")
def corrections(original: Chargeback) -> list[dict[str, str]]:
    """Correction rows after the CPU price of October's first half went from 0.24 to 0.30 (shared
    ingress-nginx CPU included), issued in December."""
    recomputed = repriced(original)
    documents = tuple(
        Document(invoice_number(original, unit), "invoice", unit, None, "CNY", "0", "{}", tuple(lines))
        for unit, lines in chargeback_lines(original).items()
    )
    issue = Issue(OCT.label, 0, "original", OCT.label, "", {}, "2026-11-01T00:00:00Z", "t", documents)
    in_force = month_in_force([issue])
    changes = differences(in_force, chargeback_lines(recomputed))
    rows = []
    for unit in sorted({c.business_unit for c in changes}):
        lines = correction_lines([c for c in changes if c.business_unit == unit])
        number = note_number(in_force[unit].invoice or "", 1)
        rows += correction_rows(recomputed.catalog, OCT, DECEMBER, unit, number, lines, "CNY", "usage")
    return parse(csv_text(COLUMNS, rows))


def ratio_of(row: dict[str, str]) -> Decimal:
    return json.loads(row["AllocatedMethodDetails"], parse_float=Decimal)["Elements"][0]["AllocatedRatio"]


def check_columns(rows: list[dict[str, str]]) -> None:
    """Rows of focus.csv as written (FOCUS 1.4): no failed check of the 1.4 model, and the same rows in the 1.3
    layout meet the 1.3 rules."""
    content = csv_text(COLUMNS, rows)
    assert violations(content) == []
    check_1_3_columns(parse(relayout(content, "1.3")))


def check_1_3_columns(rows: list[dict[str, str]]) -> None:
    columns, written = spec(), columns_of("1.3")
    mandatory = {name for name, r in columns.items() if r["FeatureLevel"] == "Mandatory"}
    assert mandatory <= set(written)
    assert all(name in columns or name.startswith("x_") for name in written)
    for row in rows:
        assert row["ProviderName"] == row["PublisherName"] == row["InvoiceIssuerName"]
        for name in written:
            if name not in columns:
                continue
            value, kind = row[name], columns[name]["Type"]
            if value == "":
                assert columns[name]["Nullable"] == "True", f"{name} MUST NOT be null"
                continue
            if kind == "Decimal":
                Decimal(value)
            elif kind == "Date/Time":
                assert ISO.match(value), (name, value)
            elif kind == "JSON":
                assert isinstance(json.loads(value), dict), f"{name} must be a JSON object"
        assert row["ServiceProviderName"] and row["HostProviderName"]
        assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["BillingPeriodStart"] < row["BillingPeriodEnd"]
        tags = json.loads(row["Tags"])
        assert all(isinstance(v, str) or v is True for v in tags.values())
        check_allocation_columns(row, tags)


def check_allocation_columns(row: dict[str, str], tags: dict) -> None:
    allocated = bool(row["AllocatedMethodId"])
    if not allocated:
        assert all(row[name] == "" for name in (*ALLOCATION, "AllocatedTags")), "MUST be null when not allocated"
        return
    assert all(row[name] for name in ALLOCATION), "MUST NOT be null for an allocated charge"
    details = json.loads(row["AllocatedMethodDetails"], parse_float=Decimal)
    assert isinstance(details["Elements"], list) and details["Elements"]
    for element in details["Elements"]:
        assert isinstance(element["AllocatedRatio"], Decimal) and 0 < element["AllocatedRatio"] <= 1
        assert all(key in {"AllocatedRatio", "UsageUnit", "UsageQuantity"} or key.startswith("x_") for key in element)
    assert all(key == "Elements" or key.startswith("x_") for key in details)
    allocated_tags = json.loads(row["AllocatedTags"])
    assert not set(allocated_tags) & set(tags), "AllocatedTags MUST NOT repeat a key of Tags"
    assert all(isinstance(v, str) or v is True for v in allocated_tags.values())


def test_every_row_meets_the_column_rules(normal: list[dict[str, str]], corrections: list[dict[str, str]]) -> None:
    assert any(r["AllocatedMethodId"] for r in normal) and any(not r["AllocatedMethodId"] for r in normal)
    assert any(r["AllocatedMethodId"] for r in corrections) and any(not r["AllocatedMethodId"] for r in corrections)
    check_columns(normal)
    check_columns(corrections)


def test_charge_class_is_null_unless_a_correction(normal, corrections) -> None:
    assert {r["ChargeClass"] for r in normal} == {""}
    assert {r["ChargeClass"] for r in corrections} == {"Correction"}


def test_allocated_charges_add_up_to_their_origin_with_its_dimensions(normal: list[dict[str, str]]) -> None:
    origins: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for row in normal:
        if row["AllocatedMethodId"]:
            key = (row["ResourceId"], row["SkuPriceId"], row["ChargePeriodStart"], row["ChargePeriodEnd"])
            origins[key].append(row)
    assert {key[0] for key in origins} == {"dc1/ingress-nginx", "dc1/monitoring"}
    for key, rows in origins.items():
        ratios = [ratio_of(r) for r in rows]
        assert sum(ratios) == 1, key
        assert len({r["AllocatedResourceId"] for r in rows}) == len(rows)
        for column in COLUMNS:
            if column in PER_RECEIVER or column in AGGREGATABLE or column.startswith("x_"):
                continue
            assert len({r[column] for r in rows}) == 1, (key, column)
        assert json.loads(rows[0]["Tags"]) == {"namespace": rows[0]["ResourceName"]}

    # The origin charges in closed form (month_rows: 1 core and 2 GiB/h egress in ingress-nginx, 4 GiB in
    # monitoring, every hour of the month's 744; the version of 2026-10-15 changes only cold storage's price,
    # so each origin is one line from the first version, not split there).
    def origin(namespace: str, sku: str) -> list[dict[str, str]]:
        month = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
        return origins[(f"dc1/{namespace}", f"{sku}@2026-01-01T00:00:00Z", *month)]

    cents = Decimal("0.01")
    for namespace, sku, quantity, price in [
        ("ingress-nginx", "cpu", Decimal(744), Decimal("0.24")),
        ("ingress-nginx", "egress", Decimal(2 * 744), Decimal("0.50")),
        ("monitoring", "memory", Decimal(4 * 744), Decimal("0.032")),
    ]:
        rows = origin(namespace, sku)
        assert sum(Decimal(r["BilledCost"]) for r in rows) == (quantity * price).quantize(cents, ROUND_HALF_EVEN)
        # Quantities are split at nine decimals: their sum may miss the measured total by a nano-unit per unit.
        assert abs(sum(Decimal(r["PricingQuantity"]) for r in rows) - quantity) <= Decimal("1e-9") * len(rows)
        assert {r["ListUnitPrice"] for r in rows} == {str(price)}


def test_corrections_are_billed_later_on_other_invoices_without_double_counting(
    original: Chargeback, normal: list[dict[str, str]], corrections: list[dict[str, str]]
) -> None:
    originals = {r["InvoiceId"] for r in normal}
    assert not originals & {r["InvoiceId"] for r in corrections}
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in corrections} == {
        ("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")
    }
    for row in corrections:
        assert OCT.start <= dt.datetime.fromisoformat(row["ChargePeriodStart"]) < OCT.end
        assert dt.datetime.fromisoformat(row["ChargePeriodEnd"]) <= OCT.end
    # Accounting style: each reversal negates a row as issued, all its other columns matching the original.
    same = ("BillingAccountId", "ResourceId", "SkuPriceId", "ChargePeriodStart", "ChargePeriodEnd", "ListUnitPrice")
    issued = {tuple(r[c] for c in same): r for r in normal}
    reversals = [r for r in corrections if r["ChargeDescription"].endswith("reversal of the line as issued")]
    assert reversals and len(reversals) < len(corrections)
    for row in reversals:
        before = issued[tuple(row[c] for c in same)]
        for column in AGGREGATABLE:
            assert Decimal(row[column]) == -Decimal(before[column]), column
    # The first half's CPU (0.24 → 0.30) is charged again at the new price, and nothing is counted twice: the
    # correction rows add up to the recomputed month minus the issued one.
    assert {r["ListUnitPrice"] for r in corrections if r["SkuPriceId"] == "cpu@2026-01-01T00:00:00Z"} == {
        "0.24",
        "0.30",
    }
    recomputed = sum(Decimal(r["BilledCost"]) for r in parse(csv_text(COLUMNS, focus_rows(repriced(original)))))
    issued_total = sum(Decimal(r["BilledCost"]) for r in normal)
    assert sum(Decimal(r["BilledCost"]) for r in corrections) == recomputed - issued_total != 0


def test_focus_columns_are_written_for_an_empty_month() -> None:
    empty = charge(usage_frame([]), load_catalog(EXAMPLE_CATALOG), OCT)
    assert csv_text(COLUMNS, focus_rows(empty)).splitlines() == [",".join(COLUMNS)]
