"""A FOCUS 1.4 Cost and Usage file checked against the FinOps Foundation's own 1.4 data model, not our reading.

The model is data: tests/data/focus-1.4/focus_1_4_model.json, a pinned copy (sha256 in its
model_provenance.json) of the machine-readable FOCUS 1.4 Data Model shipped by PyPI focus-data-toolkit 0.14.1
(extracted from the Foundation's workbook, CC-BY-4.0, attribution in tests/data/focus-1.4/README.md), and
the official AllocatedMethodDetails JSON schema (FOCUS_Spec v1.4, specification/schemas/datasets/cost_and_usage/).

`violations` returns every failed check as text ("row 3 ServiceSubcategory: ..."), so a test asserts an empty
list and a planted violation names itself. RULES_CHECKED / RULES_NOT_CHECKED list what it checks and what not
(why), as the conformance report of the README's finance guide does.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "focus-1.4"
COST_AND_USAGE = "Cost and Usage"
BILLING_PERIOD = "Billing Period"
INVOICE_DETAIL = "Invoice Detail"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MONEY_TOLERANCE = Decimal("0.01")

RULES_CHECKED = (
    "presence: every Mandatory column of the 1.4 model; no column outside the model but custom x_ ones "
    "(so 1.3's ProviderName and PublisherName fail)",
    "nullability: a column the model marks allows_nulls=false is never empty",
    "types: Decimal parses as a finite decimal, Date/Time is ISO 8601 UTC (YYYY-MM-DDTHH:MM:SSZ), JSON and "
    "Key-Value cells are JSON objects (Key-Value values strings, numbers or booleans), Currency is 3 capitals",
    "allowed values: every column the model gives allowed_values (ChargeCategory, ChargeClass, ChargeFrequency, "
    "PricingCategory, ServiceCategory, ServiceSubcategory, ...)",
    "value format Decimal (non-negative): ListUnitPrice, ContractedUnitPrice",
    "ServiceSubcategory belongs to its ServiceCategory (the model's service_subcategory_parents)",
    "ChargeClass is Correction exactly on rows billed in a later billing period than their charge period",
    "ChargePeriodStart < ChargePeriodEnd, BillingPeriodStart < BillingPeriodEnd, a row that is not a correction "
    "has its charge period inside its billing period",
    "ConsumedQuantity and ConsumedUnit null unless ChargeCategory is Usage, and null together",
    "PricingQuantity, PricingUnit and PricingCategory not null on Usage rows that are not corrections; "
    "PricingUnit null when PricingQuantity is",
    "SkuId not null when SkuPriceId is; ListUnitPrice/ContractedUnitPrice null when PricingQuantity is",
    "ListCost = ListUnitPrice x PricingQuantity and ContractedCost = ContractedUnitPrice x PricingQuantity, "
    "within the cent the costs are rounded to",
    "split cost allocation: AllocatedMethodId, AllocatedResourceId, AllocatedResourceName and "
    "AllocatedMethodDetails all null or all set; AllocatedTags null unless allocated; AllocatedMethodDetails "
    "valid against the official JSON schema (Elements, AllocatedRatio in [0, 1], x_ keys in PascalCase); "
    "AllocatedTags repeats no key of Tags",
    "Credit rows that are not corrections have BilledCost <= 0 (a correction's reversal of a credit is positive)",
    "Billing Period dataset: every column's presence (all Mandatory), type, nullability and allowed values "
    "(BillingPeriodStatus Open or Closed); BillingPeriodStart < BillingPeriodEnd; BillingPeriodCreated <= "
    "BillingPeriodLastUpdated; one row per billing period",
    "Invoice Detail dataset: every Mandatory column's presence, type, nullability and allowed values "
    "(ChargeCategory, InvoiceIssueStatus); BillingPeriodStart < BillingPeriodEnd; InvoiceDetailCreated <= "
    "InvoiceDetailLastUpdated; one row per InvoiceDetailId",
)
RULES_NOT_CHECKED = (
    "Contract Commitment dataset: not written (the pool sells no commitments)",
    "Invoice Detail's Conditional PaymentCurrency*, PurchaseOrderNumber: the pool bills in one currency without "
    "purchase orders, so their conditions do not apply",
    "ISO 4217 membership of BillingCurrency: the model's list is not pinned here; 3 capitals are checked and "
    "rates.yaml's currency is validated when the catalog loads",
    "columns the pool has no data for and leaves out (Conditional: commitments, capacity reservations, regions, "
    "availability zones, pricing currency, InvoiceDetailId): their conditions do not apply",
    "Unit format (ConsumedUnit, PricingUnit): the specification only recommends the unit format",
    "the sum rules across rows (allocated charges add up to the origin, corrections add up to the change, "
    "invoices add up): checked by test_focus_conformance.py and the reconciliation test, not by this module",
)


@cache
def model() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "focus_1_4_model.json").read_text(encoding="utf-8"))


@cache
def _allocation_schema() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "allocatedmethoddetailsobjectschema.json").read_text(encoding="utf-8"))


def cost_and_usage_columns() -> dict[str, dict[str, Any]]:
    return model()["datasets"][COST_AND_USAGE]["columns"]


def violations(content: str) -> list[str]:
    """Every failed check of a focus.csv (text as written) against the FOCUS 1.4 Cost and Usage model."""
    return _dataset_violations(content, COST_AND_USAGE, _cross_column)


def billing_period_violations(content: str) -> list[str]:
    """Every failed check of a focus-billing-period.csv against the FOCUS 1.4 Billing Period model."""
    found = _dataset_violations(
        content, BILLING_PERIOD, _periods_ordered("BillingPeriodCreated", "BillingPeriodLastUpdated")
    )
    starts = [row["BillingPeriodStart"] for row in csv.DictReader(io.StringIO(content))]
    return found + [f"BillingPeriodStart {s}: more than one row" for s in sorted(set(starts)) if starts.count(s) > 1]


def invoice_detail_violations(content: str) -> list[str]:
    """Every failed check of a focus-invoice-detail.csv against the FOCUS 1.4 Invoice Detail model."""
    found = _dataset_violations(
        content, INVOICE_DETAIL, _periods_ordered("InvoiceDetailCreated", "InvoiceDetailLastUpdated")
    )
    ids = [row["InvoiceDetailId"] for row in csv.DictReader(io.StringIO(content))]
    return found + [f"InvoiceDetailId {i}: more than one row" for i in sorted(set(ids)) if ids.count(i) > 1]


def _dataset_violations(content: str, dataset: str, rules: Callable[[dict[str, str]], list[str]]) -> list[str]:
    columns = model()["datasets"][dataset]["columns"]
    header = content.partition("\n")[0].split(",")
    found = [f"column {name}: Mandatory in FOCUS 1.4, missing" for name, spec in columns.items()
             if spec["feature_level"] == "Mandatory" and name not in header]  # fmt: skip
    found += [f"column {name}: not a FOCUS 1.4 column and not custom (x_)" for name in header
              if name not in columns and not name.startswith("x_")]  # fmt: skip
    for index, row in enumerate(csv.DictReader(io.StringIO(content)), start=1):
        found += [f"row {index} {problem}" for problem in _row_violations(row, columns, rules)]
    return found


def _row_violations(
    row: dict[str, str], columns: dict[str, dict[str, Any]], rules: Callable[[dict[str, str]], list[str]]
) -> list[str]:
    found = []
    for name, value in row.items():
        spec = columns.get(name)
        if spec is None:
            continue
        problem = _cell_problem(spec, value)
        if problem:
            found.append(f"{name}: {problem} ({value!r})")
    if found:  # the rules below read typed values
        return found
    return rules(row)


def _periods_ordered(created: str, updated: str) -> Callable[[dict[str, str]], list[str]]:
    """The rules of a dataset row with a billing period and a created/last-updated pair of columns."""

    def rules(row: dict[str, str]) -> list[str]:
        found = []
        if not row["BillingPeriodStart"] < row["BillingPeriodEnd"]:
            found.append("BillingPeriodStart: MUST be before BillingPeriodEnd")
        if not row[created] <= row[updated]:
            found.append(f"{updated}: MUST NOT be before {created}")
        return found

    return rules


def _cell_problem(spec: dict[str, Any], value: str) -> str | None:
    if value == "":
        return None if spec["allows_nulls"] else "MUST NOT be null"
    kind, fmt = spec["data_type"], spec["value_format"]
    if spec["allowed_values"] and value not in spec["allowed_values"]:
        return "not an allowed value"
    if kind == "Decimal":
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "not a decimal"
        if not number.is_finite():
            return "not a finite decimal"
        if "non-negative" in fmt and number < 0:
            return "MUST be non-negative"
    elif kind == "Date/Time" and not ISO_UTC.match(value):
        return "not an ISO 8601 UTC date/time"
    elif kind == "JSON":
        try:
            parsed = json.loads(value)
        except ValueError:
            return "not JSON"
        if not isinstance(parsed, dict):
            return "not a JSON object"
        if fmt == "Key-Value" and not all(isinstance(v, str | bool | int | float) for v in parsed.values()):
            return "Key-Value values must be strings, numbers or booleans"
    if fmt == "Currency" and not CURRENCY.match(value):
        return "not a currency code"
    return None


def _cross_column(row: dict[str, str]) -> list[str]:
    found = []
    parents = model()["service_subcategory_parents"]
    sub, category = row.get("ServiceSubcategory", ""), row["ServiceCategory"]
    if sub and parents.get(sub) != category:
        found.append(f"ServiceSubcategory: {sub!r} belongs to {parents.get(sub)!r}, not {category!r}")
    correction = row["ChargeClass"] == "Correction"
    later = row["BillingPeriodStart"] >= row["ChargePeriodEnd"]
    if correction != later:
        found.append("ChargeClass: Correction exactly when billed after the charge period")
    if not row["ChargePeriodStart"] < row["ChargePeriodEnd"]:
        found.append("ChargePeriodStart: MUST be before ChargePeriodEnd")
    if not row["BillingPeriodStart"] < row["BillingPeriodEnd"]:
        found.append("BillingPeriodStart: MUST be before BillingPeriodEnd")
    if not correction and not (
        row["BillingPeriodStart"] <= row["ChargePeriodStart"] and row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]
    ):
        found.append("ChargePeriodStart: the charge period of a row that is no correction is in its billing period")
    usage = row["ChargeCategory"] == "Usage"
    if not usage and (row.get("ConsumedQuantity") or row.get("ConsumedUnit")):
        found.append("ConsumedQuantity: MUST be null unless ChargeCategory is Usage")
    if bool(row.get("ConsumedQuantity")) != bool(row.get("ConsumedUnit")):
        found.append("ConsumedUnit: null exactly when ConsumedQuantity is")
    if usage and not correction:
        for name in ("PricingQuantity", "PricingUnit", "PricingCategory"):
            if not row[name]:
                found.append(f"{name}: MUST NOT be null on a Usage row that is not a correction")
    if not row["PricingQuantity"] and (row["PricingUnit"] or row["ListUnitPrice"] or row["ContractedUnitPrice"]):
        found.append("PricingUnit: MUST be null when PricingQuantity is (so are the unit prices)")
    if row.get("SkuPriceId") and not row.get("SkuId"):
        found.append("SkuId: MUST NOT be null when SkuPriceId is not")
    if row["PricingQuantity"]:
        quantity = Decimal(row["PricingQuantity"])
        for cost, price in (("ListCost", "ListUnitPrice"), ("ContractedCost", "ContractedUnitPrice")):
            if row[price] and abs(Decimal(row[cost]) - Decimal(row[price]) * quantity) > MONEY_TOLERANCE:
                found.append(f"{cost}: MUST be {price} x PricingQuantity")
    if row["ChargeCategory"] == "Credit" and not correction and Decimal(row["BilledCost"]) > 0:
        found.append("BilledCost: a Credit is not positive")
    return found + _allocation(row)


def _allocation(row: dict[str, str]) -> list[str]:
    names = ("AllocatedMethodId", "AllocatedResourceId", "AllocatedResourceName", "AllocatedMethodDetails")
    set_ = [bool(row.get(n)) for n in names]
    if not any(set_):
        return ["AllocatedTags: MUST be null when not allocated"] if row.get("AllocatedTags") else []
    if not all(set_):
        return ["AllocatedMethodId: the Allocated* columns are all set on an allocated charge"]
    found = []
    details = json.loads(row["AllocatedMethodDetails"])
    for error in jsonschema.Draft202012Validator(_allocation_schema()).iter_errors(details):
        found.append(f"AllocatedMethodDetails: {error.message}")
    if row.get("AllocatedTags") and set(json.loads(row["AllocatedTags"])) & set(json.loads(row["Tags"] or "{}")):
        found.append("AllocatedTags: MUST NOT repeat a key of Tags")
    return found
