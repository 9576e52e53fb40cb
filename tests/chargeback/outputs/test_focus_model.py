"""FOCUS files checked against the FinOps Foundation's FOCUS 1.4 data model (tests/support/focus_model.py, a
pinned copy of the model under tests/data/focus-1.4): the checker catches planted violations, the allowed
service categories the catalog validates against are the model's, and the 1.3 layout is the 1.4 one plus the
two columns 1.4 removed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chargeback.outputs.csv_tables import csv_text
from chargeback.outputs.focus import COLUMNS, FOCUS_1_3_COLUMNS, columns_of, focus_rows, relayout
from chargeback.rate.result import Chargeback, charge
from pool_catalog import load_catalog
from pool_catalog.resources import FOCUS_SERVICE_CATEGORIES, SERVICE_SUBCATEGORIES
from tests.chargeback.outputs.test_outputs import OCT, month_rows
from tests.pool_catalog.test_capability_rates import errors_after
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.focus_model import MODEL_DIR, cost_and_usage_columns, model, violations
from tests.support.usage_frames import usage_frame


@pytest.fixture(scope="module")
def written() -> str:
    chargeback: Chargeback = charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT)
    return csv_text(COLUMNS, focus_rows(chargeback))


def test_the_pinned_model_is_the_published_one() -> None:
    provenance = json.loads((MODEL_DIR / "model_provenance.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((MODEL_DIR / "focus_1_4_model.json").read_bytes()).hexdigest()
    assert digest == provenance["output"]["sha256"]
    assert provenance["source"]["license"] == "CC-BY-4.0" and (MODEL_DIR / "CC-BY-4.0.txt").is_file()
    columns = cost_and_usage_columns()
    assert len(columns) == 65 and sum(c["feature_level"] == "Mandatory" for c in columns.values()) == 21
    assert "ProviderName" not in columns and "PublisherName" not in columns


def test_the_catalogs_allowed_service_values_are_the_models() -> None:
    assert list(FOCUS_SERVICE_CATEGORIES) == cost_and_usage_columns()["ServiceCategory"]["allowed_values"]
    assert dict(SERVICE_SUBCATEGORIES) == model()["service_subcategory_parents"]
    assert set(SERVICE_SUBCATEGORIES) == set(cost_and_usage_columns()["ServiceSubcategory"]["allowed_values"])


def test_written_file_has_no_failed_check(written: str) -> None:
    assert violations(written) == []


def _edit_cell(column: str, value: str, row: int = 0) -> Callable[[list[dict[str, str]]], None]:
    def change(rows: list[dict[str, str]]) -> None:
        rows[row][column] = value

    return change


def _allocated(change: Callable[[dict[str, str]], None]) -> Callable[[list[dict[str, str]]], None]:
    def apply(rows: list[dict[str, str]]) -> None:
        change(next(r for r in rows if r["AllocatedMethodId"]))

    return apply


PLANTED: dict[str, tuple[Callable[[list[dict[str, str]]], None], str]] = {
    "subcategory Other": (_edit_cell("ServiceSubcategory", "Other"), "ServiceSubcategory: not an allowed value"),
    "subcategory of another category": (
        _edit_cell("ServiceSubcategory", "Object Storage"),
        "ServiceSubcategory: 'Object Storage' belongs to 'Storage', not 'Compute'",
    ),
    "null BilledCost": (_edit_cell("BilledCost", ""), "BilledCost: MUST NOT be null"),
    "ChargeClass not allowed": (_edit_cell("ChargeClass", "Adjustment"), "ChargeClass: not an allowed value"),
    "correction in its own month": (_edit_cell("ChargeClass", "Correction"), "ChargeClass: Correction exactly"),
    "date without zone": (
        _edit_cell("ChargePeriodStart", "2026-10-01T00:00:00"),
        "ChargePeriodStart: not an ISO 8601 UTC date/time",
    ),
    "charge period outside the billing period": (
        _edit_cell("ChargePeriodEnd", "2026-11-02T00:00:00Z"),
        "the charge period of a row that is no correction is in its billing period",
    ),
    "negative unit price": (_edit_cell("ListUnitPrice", "-0.24"), "ListUnitPrice: MUST be non-negative"),
    "ListCost off the price": (_edit_cell("ListCost", "1.00"), "ListCost: MUST be ListUnitPrice x PricingQuantity"),
    "consumed quantity without unit": (_edit_cell("ConsumedUnit", ""), "ConsumedUnit: null exactly when"),
    "Tags not an object": (_edit_cell("Tags", '["a"]'), "Tags: not a JSON object"),
    "currency": (_edit_cell("BillingCurrency", "yuan"), "BillingCurrency: not a currency code"),
    "allocation ratio above 1": (
        _allocated(lambda r: r.update(AllocatedMethodDetails='{"Elements":[{"AllocatedRatio":1.5}]}')),
        "AllocatedMethodDetails: 1.5 is greater than the maximum of 1",
    ),
    "allocation custom key not x_": (
        _allocated(lambda r: r.update(AllocatedMethodDetails='{"Elements":[{"AllocatedRatio":0.5}],"Split":"x"}')),
        "AllocatedMethodDetails: 'Split' does not match any of the regexes",
    ),
    "allocated charge without its method": (
        _allocated(lambda r: r.update(AllocatedMethodId="")),
        "AllocatedMethodId: the Allocated* columns are all set",
    ),
    "AllocatedTags repeating Tags": (
        _allocated(lambda r: r.update(AllocatedTags=r["Tags"])),
        "AllocatedTags: MUST NOT repeat a key of Tags",
    ),
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_a_planted_violation_fails(written: str, name: str) -> None:
    change, expected = PLANTED[name]
    rows = list(csv.DictReader(io.StringIO(written)))
    change(rows)
    found = violations(csv_text(COLUMNS, rows))
    assert any(expected in problem for problem in found), found


def test_a_missing_mandatory_column_and_a_1_3_column_fail(written: str) -> None:
    rows = list(csv.DictReader(io.StringIO(written)))
    without = [c for c in COLUMNS if c != "EffectiveCost"]
    assert "column EffectiveCost: Mandatory in FOCUS 1.4, missing" in violations(
        csv_text(without, ({c: r[c] for c in without} for r in rows))
    )
    assert "column ProviderName: not a FOCUS 1.4 column and not custom (x_)" in violations(relayout(written, "1.3"))


def test_1_3_is_1_4_plus_the_removed_columns_and_converts_back_byte_for_byte(written: str) -> None:
    old = relayout(written, "1.3")
    assert old.partition("\n")[0].split(",") == list(columns_of("1.3"))
    assert set(FOCUS_1_3_COLUMNS) - set(COLUMNS) == {"ProviderName", "PublisherName"}
    rows = list(csv.DictReader(io.StringIO(old)))
    assert all(r["ProviderName"] == r["PublisherName"] == r["InvoiceIssuerName"] != "" for r in rows)
    assert relayout(old, "1.4") == written and relayout(written, "1.4") == written
    with pytest.raises(ValueError, match=r"not a focus\.csv this version writes"):
        relayout("BilledCost\n1.00\n", "1.4")


def test_a_capability_subcategory_outside_the_allowed_list_names_file_field_line_and_the_fix(tmp_path: Path) -> None:
    def plain_other(doc: Any) -> None:
        doc["capabilities"][0]["service_subcategory"] = "Other"

    (finding,) = errors_after(tmp_path, plain_other)
    assert finding.file.endswith("rates.yaml") and finding.field == "capabilities[0].service_subcategory"
    assert finding.line is not None
    assert "service_subcategory 'Other' is not a FOCUS ServiceSubcategory" in finding.message
    assert "under 'Identity' use one of: Identity and Access Management, Other (Identity)" in finding.message


def test_a_capability_category_outside_the_allowed_list_is_an_error(tmp_path: Path) -> None:
    def unknown(doc: Any) -> None:
        doc["capabilities"][2]["service_category"] = "Scoring"

    findings = errors_after(tmp_path, unknown)
    assert findings[0].field == "capabilities[2].service_category"
    assert "'Scoring' is not a FOCUS ServiceCategory; use one of: AI and Machine Learning" in findings[0].message
