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

from infra.catalog.models import Resource

from .invoices import UNALLOCATED_NAME, invoice_number, text
from .period import iso_utc
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


def focus_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """One FOCUS row per rated line, every value as the text written to focus.csv."""
    catalog, period = chargeback.catalog, chargeback.period
    issuer = catalog.rates.issuer.name
    units = {u.id: u for u in catalog.units}
    rows = []
    for line in chargeback.lines.to_dict("records"):
        unit = units.get(line["business_unit"])
        category, subcategory, service = SERVICES[line["resource"]]
        sku = sku_of(line["resource"], line["tier"])
        where = f"namespace {line['namespace']} on cluster {line['cluster']}"
        tier = f" {line['tier']}" if line["tier"] else ""
        description = f"{service}{tier} used by {where}"
        if line["shared_split"]:
            description += f" (shared, {line['shared_split']} split, share {text(line['share'])})"
        tags: dict[str, Any] = {"business_unit": line["business_unit"], "namespace": line["namespace"]}
        if line["cost_center"]:
            tags["cost_center"] = line["cost_center"]
        values = {
            "BilledCost": text(line["amount"]),
            "BillingAccountId": line["business_unit"],
            "BillingAccountName": unit.display_name if unit else UNALLOCATED_NAME,
            "BillingAccountType": "Business Unit",
            "BillingCurrency": line["currency"],
            "BillingPeriodEnd": iso_utc(period.end),
            "BillingPeriodStart": iso_utc(period.start),
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ChargeDescription": description,
            "ChargeFrequency": "Usage-Based",
            "ChargePeriodEnd": iso_utc(line["charge_period_end"]),
            "ChargePeriodStart": iso_utc(line["charge_period_start"]),
            "ConsumedQuantity": text(line["usage_quantity"]),
            "ConsumedUnit": line["usage_unit"],
            "ContractedCost": text(line["amount"]),
            "ContractedUnitPrice": text(line["unit_price"]),
            "EffectiveCost": text(line["amount"]),
            "InvoiceId": invoice_number(chargeback, line["business_unit"]),
            "InvoiceIssuerName": issuer,
            "ListCost": text(line["amount"]),
            "ListUnitPrice": text(line["unit_price"]),
            "PricingCategory": "Standard",
            "PricingQuantity": text(line["billed_quantity"]),
            "PricingUnit": line["unit"],
            "ProviderName": issuer,
            "PublisherName": issuer,
            "ServiceCategory": category,
            "ServiceName": service,
            "ServiceSubcategory": subcategory,
            "SkuId": sku,
            "SkuPriceId": f"{sku}@{iso_utc(line['rate_effective_from'])}",
            "SubAccountId": f"{line['cluster']}/{line['namespace']}",
            "SubAccountName": line["namespace"],
            "SubAccountType": "Kubernetes Namespace",
            "Tags": json.dumps(tags, sort_keys=True, ensure_ascii=False, separators=(",", ":")),
            "x_BusinessUnit": line["business_unit"],
            "x_CostCenter": line["cost_center"],
            "x_Cluster": line["cluster"],
            "x_Namespace": line["namespace"],
            "x_Resource": line["resource"],
            "x_StorageTier": line["tier"],
            "x_BillingMode": line["billing_mode"],
            "x_RateEffectiveFrom": iso_utc(line["rate_effective_from"]),
            "x_SharedSplit": line["shared_split"],
            "x_Share": text(line["share"]),
        }
        rows.append(values)
    return rows
