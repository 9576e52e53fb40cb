"""The rated lines as a FOCUS 1.2 cost and usage dataset (https://focus.finops.org).

Every Mandatory column is present; Conditional/Recommended columns are included where this pool
has the data (invoice id, consumed quantity, SKU, sub account = namespace, list/contracted unit
price). Custom columns carry the `x_` prefix. One row per invoice line, so the BilledCost of an
InvoiceId adds up to that invoice's total. Decimals are fixed-point text, times ISO 8601 UTC,
null is an empty cell.
"""

from __future__ import annotations

import json
from typing import Any

from infra.catalog.models import Catalog, Resource

from .invoices import UNALLOCATED_NAME, invoice_number, text
from .period import Period, iso_utc
from .result import Chargeback

FOCUS_COLUMNS: tuple[str, ...] = (
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
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
)
"""FOCUS 1.2 columns written, in order (all Mandatory ones among them)."""

CUSTOM_COLUMNS: tuple[str, ...] = (
    "x_BusinessUnit",
    "x_CostCenter",
    "x_Cluster",
    "x_Namespace",
    "x_Resource",
    "x_StorageTier",
    "x_BillingMode",
    "x_RateEffectiveFrom",
    "x_SharedSplit",
    "x_Share",
)

COLUMNS = FOCUS_COLUMNS + CUSTOM_COLUMNS

# ServiceCategory, ServiceSubcategory and ServiceName per resource (FOCUS 1.2 allowed categories).
SERVICES: dict[str, tuple[str, str, str]] = {
    Resource.CPU.value: ("Compute", "Containers", "Pool Compute (CPU)"),
    Resource.MEMORY.value: ("Compute", "Containers", "Pool Compute (memory)"),
    Resource.GPU.value: ("Compute", "Containers", "Pool Compute (GPU)"),
    Resource.STORAGE.value: ("Storage", "Block Storage", "Pool Storage"),
    Resource.EGRESS.value: ("Networking", "Network Connectivity", "Pool Network Egress"),
    Resource.LOAD_BALANCER.value: ("Networking", "Network Infrastructure", "Pool Load Balancer Addresses"),
}


def sku_of(resource: str, tier: str) -> str:
    return f"{resource}-{tier}" if tier else resource


def text_line(row: dict[str, Any]) -> dict[str, str]:
    """A rated line (rating.LINE_SCHEMA record) as the text fields a ledger line keeps."""
    return {
        "entry": "charge",
        "cluster": row["cluster"],
        "namespace": row["namespace"],
        "resource": row["resource"],
        "tier": row["tier"],
        "rate_effective_from": iso_utc(row["rate_effective_from"]),
        "charge_period_start": iso_utc(row["charge_period_start"]),
        "charge_period_end": iso_utc(row["charge_period_end"]),
        "usage_quantity": text(row["usage_quantity"]),
        "usage_unit": row["usage_unit"],
        "billed_quantity": text(row["billed_quantity"]),
        "unit": row["unit"],
        "unit_price": text(row["unit_price"]),
        "amount": text(row["amount"]),
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
) -> dict[str, str]:
    """The FOCUS row of one text line billed to `unit_id` on `invoice_id` in billing period `billing`."""
    issuer = catalog.rates.issuer.name
    unit = next((u for u in catalog.units if u.id == unit_id), None)
    cost_center = unit.cost_center if unit else ""
    category, subcategory, service = SERVICES[line["resource"]]
    sku = sku_of(line["resource"], line["tier"])
    where = f"namespace {line['namespace']} on cluster {line['cluster']}"
    tier = f" {line['tier']}" if line["tier"] else ""
    description = f"{service}{tier} used by {where}"
    if line["shared_split"]:
        description += f" (shared, {line['shared_split']} split, share {line['share']})"
    if charge_class:
        description += " — reversal of the line as issued" if line["entry"] == "reversal" else " — as corrected"
    tags: dict[str, Any] = {"business_unit": unit_id, "namespace": line["namespace"]}
    if cost_center:
        tags["cost_center"] = cost_center
    return {
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
        "InvoiceId": invoice_id,
        "InvoiceIssuerName": issuer,
        "ListCost": line["amount"],
        "ListUnitPrice": line["unit_price"],
        "PricingCategory": "Standard",
        "PricingQuantity": line["billed_quantity"],
        "PricingUnit": line["unit"],
        "ProviderName": issuer,
        "PublisherName": issuer,
        "ServiceCategory": category,
        "ServiceName": service,
        "ServiceSubcategory": subcategory,
        "SkuId": sku,
        "SkuPriceId": f"{sku}@{line['rate_effective_from']}",
        "SubAccountId": f"{line['cluster']}/{line['namespace']}",
        "SubAccountName": line["namespace"],
        "SubAccountType": "Kubernetes Namespace",
        "Tags": json.dumps(tags, sort_keys=True, ensure_ascii=False, separators=(",", ":")),
        "x_BusinessUnit": unit_id,
        "x_CostCenter": cost_center,
        "x_Cluster": line["cluster"],
        "x_Namespace": line["namespace"],
        "x_Resource": line["resource"],
        "x_StorageTier": line["tier"],
        "x_BillingMode": billing_mode,
        "x_RateEffectiveFrom": line["rate_effective_from"],
        "x_SharedSplit": line["shared_split"],
        "x_Share": line["share"],
    }


def focus_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """One FOCUS row per rated line, every value as the text written to focus.csv."""
    return [
        focus_row(
            chargeback.catalog,
            chargeback.period,
            row["business_unit"],
            invoice_number(chargeback, row["business_unit"]),
            text_line(row),
            currency=row["currency"],
            billing_mode=row["billing_mode"],
        )
        for row in chargeback.lines.to_dict("records")
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
    charge periods as originally incurred, accounting style (a reversal row, then the corrected row)."""
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
