"""The rated lines as a FOCUS 1.3 cost and usage dataset (https://focus.finops.org).

Every Mandatory column is present; Conditional/Recommended columns are included where this pool
has the data (invoice id, consumed quantity, SKU, sub account and resource = namespace, list/contracted
unit price, split cost allocation). Custom columns carry the `x_` prefix. One row per invoice line, so
the BilledCost of an InvoiceId adds up to that invoice's total. Decimals are fixed-point text, times
ISO 8601 UTC, null is an empty cell.

Shared namespaces follow the specification's split cost allocation
(FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, specification/attributes/
provider_calculated_split_cost_allocation_handling.md and the columns AllocatedMethodId,
AllocatedMethodDetails, AllocatedResourceId, AllocatedResourceName, AllocatedTags under
specification/datasets/cost_and_usage/columns/): the origin charge is the shared namespace's line
(ResourceId = the namespace), and each unit's share is an allocated charge carrying the origin's
dimensions, unit prices and Tags, its part of the quantities and cost, the split method and ratio
(the ratios of an origin add up to exactly 1), the receiving unit as AllocatedResourceId and its
tags as AllocatedTags. The allocated charges add up to the origin charge, which is therefore not
written as a row of its own (it would be billed twice). Unlike a cloud provider's split, the
allocation *is* the chargeback: each allocated charge is billed to the receiving unit, so
BillingAccountId and InvoiceId are the unit's, not the origin's.

Corrections follow specification/attributes/correction_handling.md, accounting style: a reversal row
of the line as issued (quantities and cost negated) and a row of the line as recomputed, ChargeClass
"Correction", billed in a later open billing period with the charge period as originally incurred,
on the correction note's InvoiceId.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from pool_catalog.models import Catalog
from pool_catalog.resources import spec_of

from ..period import Period, iso_utc
from ..rate.invoices import UNALLOCATED_NAME, invoice_number, line_text, text
from ..rate.rating import allocate
from ..rate.result import Chargeback
from .csv_tables import csv_text
from .formats import Format, Inputs, register

FOCUS_VERSION = "1.3"

FOCUS_COLUMNS: tuple[str, ...] = (
    "AllocatedMethodDetails",
    "AllocatedMethodId",
    "AllocatedResourceId",
    "AllocatedResourceName",
    "AllocatedTags",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "HostProviderName",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceProviderName",
    "ServiceSubcategory",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
"""FOCUS 1.3 columns written, in order (all Mandatory ones among them; ProviderName and PublisherName are
deprecated in 1.3 but still Mandatory)."""

CUSTOM_COLUMNS: tuple[str, ...] = (
    "x_BusinessUnit",
    "x_CostCenter",
    "x_Cluster",
    "x_Namespace",
    "x_Resource",
    "x_StorageTier",
    "x_BillingMode",
    "x_RateEffectiveFrom",
)

COLUMNS = FOCUS_COLUMNS + CUSTOM_COLUMNS

ALLOCATION_METHODS = {
    "proportional": "SharedNamespace-Proportional",
    "even": "SharedNamespace-Even",
}
"""AllocatedMethodId per rates.yaml split (documented in the README's finance guide)."""

RATIO_QUANTUM = Decimal("0.000000001")


def sku_of(resource: str, tier: str) -> str:
    return f"{resource}-{tier}" if tier else resource


def text_line(row: dict[str, Any]) -> dict[str, str]:
    """A rated line (rating.LINE_SCHEMA record) as the text fields a ledger line keeps."""
    return {
        "entry": "charge",
        "cluster": row["cluster"],
        "namespace": row["namespace"],
        **line_text(row),
        "shared_split": row["shared_split"],
        "share": text(row["share"]),
    }


def focus_row(
    catalog: Catalog,
    billing: Period,
    unit_id: str,
    invoice_id: str,
    line: dict[str, str],
    *,
    currency: str,
    billing_mode: str,
    charge_class: str = "",
    ratio: Decimal | None = None,
) -> dict[str, str]:
    """The FOCUS row of one text line billed to `unit_id` on `invoice_id` in billing period `billing`
    (`ratio`: its exact share of the origin charge when it is an allocated charge of a shared namespace)."""
    issuer = catalog.rates.issuer.name
    unit = next((u for u in catalog.units if u.id == unit_id), None)
    cost_center = unit.cost_center if unit else ""
    # ServiceCategory, ServiceSubcategory and ServiceName come from the resource's spec (FOCUS allowed values).
    focus = spec_of(line["resource"]).focus
    category, subcategory, service = focus.category, focus.subcategory, focus.name
    sku = sku_of(line["resource"], line["tier"])
    where = f"namespace {line['namespace']} on cluster {line['cluster']}"
    tier = f" {line['tier']}" if line["tier"] else ""
    description = f"{service}{tier} used by {where}"
    if line["shared_split"]:
        description += f" (shared, {line['shared_split']} split)"
    if charge_class:
        description += " — reversal of the line as issued" if line["entry"] == "reversal" else " — as corrected"
    unit_tags: dict[str, Any] = {"business_unit": unit_id}
    if cost_center:
        unit_tags["cost_center"] = cost_center
    allocated = bool(line["shared_split"])
    # An allocated charge keeps the origin's Tags; the receiving unit's tags go to AllocatedTags, which must not
    # repeat a key of Tags.
    tags = {"namespace": line["namespace"]} if allocated else {**unit_tags, "namespace": line["namespace"]}
    if allocated:
        share = ratio if ratio is not None else Decimal(line["share"])
        details = f'{{"Elements":[{{"AllocatedRatio":{text(share)}}}],"x_Split":{json.dumps(line["shared_split"])}}}'
    return {
        "AllocatedMethodDetails": details if allocated else "",
        "AllocatedMethodId": ALLOCATION_METHODS.get(line["shared_split"], line["shared_split"]) if allocated else "",
        "AllocatedResourceId": f"business-unit/{unit_id}" if allocated else "",
        "AllocatedResourceName": (unit.display_name if unit else UNALLOCATED_NAME) if allocated else "",
        "AllocatedTags": _json(unit_tags) if allocated else "",
        "BilledCost": line["amount"],
        "BillingAccountId": unit_id,
        "BillingAccountName": unit.display_name if unit else UNALLOCATED_NAME,
        "BillingAccountType": "Business Unit",
        "BillingCurrency": currency,
        "BillingPeriodEnd": iso_utc(billing.end),
        "BillingPeriodStart": iso_utc(billing.start),
        "ChargeCategory": "Usage",
        "ChargeClass": charge_class,
        "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": line["charge_period_end"],
        "ChargePeriodStart": line["charge_period_start"],
        "ConsumedQuantity": line["usage_quantity"],
        "ConsumedUnit": line["usage_unit"],
        "ContractedCost": line["amount"],
        "ContractedUnitPrice": line["unit_price"],
        "EffectiveCost": line["amount"],
        "HostProviderName": issuer,
        "InvoiceId": invoice_id,
        "InvoiceIssuerName": issuer,
        "ListCost": line["amount"],
        "ListUnitPrice": line["unit_price"],
        "PricingCategory": "Standard",
        "PricingQuantity": line["billed_quantity"],
        "PricingUnit": line["unit"],
        "ProviderName": issuer,
        "PublisherName": issuer,
        "ResourceId": f"{line['cluster']}/{line['namespace']}",
        "ResourceName": line["namespace"],
        "ResourceType": "Kubernetes Namespace",
        "ServiceCategory": category,
        "ServiceName": service,
        "ServiceProviderName": issuer,
        "ServiceSubcategory": subcategory,
        "SkuId": sku,
        "SkuPriceId": f"{sku}@{line['rate_effective_from']}",
        "SubAccountId": f"{line['cluster']}/{line['namespace']}",
        "SubAccountName": line["namespace"],
        "SubAccountType": "Kubernetes Namespace",
        "Tags": _json(tags),
        "x_BusinessUnit": unit_id,
        "x_CostCenter": cost_center,
        "x_Cluster": line["cluster"],
        "x_Namespace": line["namespace"],
        "x_Resource": line["resource"],
        "x_StorageTier": line["tier"],
        "x_BillingMode": billing_mode,
        "x_RateEffectiveFrom": line["rate_effective_from"],
    }


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def origin_key(line: dict[str, str]) -> tuple[str, ...]:
    """What identifies the origin charge of an allocated line: the shared namespace's line before the split."""
    fields = ("cluster", "namespace", "resource", "tier", "rate_effective_from", "charge_period_start")
    return tuple(line[f] for f in (*fields, "charge_period_end", "shared_split"))


def allocation_ratios(lines: list[dict[str, str]]) -> list[Decimal | None]:
    """Per line: None for a unit's own line; for an allocated line its share of the origin charge, rounded to
    1e-9 by largest remainder so the ratios of one origin add up to exactly 1."""
    ratios: list[Decimal | None] = [None] * len(lines)
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, line in enumerate(lines):
        if line["shared_split"]:
            groups[origin_key(line)].append(i)
    for members in groups.values():
        weights = [Fraction(Decimal(lines[i]["share"])) for i in members]
        for i, value in zip(members, allocate(Decimal(1), weights, RATIO_QUANTUM), strict=True):
            ratios[i] = value
    return ratios


def focus_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """One FOCUS row per rated line, every value as the text written to focus.csv."""
    records = chargeback.lines.to_dict("records")
    lines = [text_line(row) for row in records]
    return [
        focus_row(
            chargeback.catalog,
            chargeback.period,
            row["business_unit"],
            invoice_number(chargeback, row["business_unit"]),
            line,
            currency=row["currency"],
            billing_mode=row["billing_mode"],
            ratio=ratio,
        )
        for row, line, ratio in zip(records, lines, allocation_ratios(lines), strict=True)
    ]


def correction_rows(
    catalog: Catalog,
    period: Period,
    billing: Period,
    unit_id: str,
    note_number: str,
    lines: list[dict[str, str]],
    currency: str,
    billing_mode: str,
) -> list[dict[str, str]]:
    """FOCUS rows of a correction note to `period`: ChargeClass Correction, billed in the open period `billing`,
    charge periods as originally incurred, accounting style (a reversal row, then the corrected row). An
    allocated line keeps the share it was issued (or recomputed) with as its ratio."""
    if billing.start < period.end:
        raise ValueError(f"corrections to {period.label} belong to a later billing period, not {billing.label}")
    return [
        focus_row(
            catalog,
            billing,
            unit_id,
            note_number,
            line,
            currency=currency,
            billing_mode=billing_mode,
            charge_class="Correction",
        )
        for line in lines
    ]


def _focus_file(inputs: Inputs) -> dict[str, str]:
    return {"focus.csv": csv_text(COLUMNS, focus_rows(inputs.chargeback))}


register(Format("focus", "focus.csv (FinOps FOCUS 1.3)", ("chargeback",), render=_focus_file))
