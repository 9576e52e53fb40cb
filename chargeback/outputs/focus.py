"""The rated lines as a FOCUS 1.4 cost and usage dataset (https://focus.finops.org), or 1.3 on request.

FOCUS 1.4 (ratified 2026-06-04) removed ProviderName and PublisherName, deprecated in 1.3 and still Mandatory
there; the rows are otherwise the same, so a 1.3 file is the 1.4 one with those two columns (= the issuer)
added (`relayout`). The ledger keeps what was issued; export converts.

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

Capability calls (rates.yaml `capabilities`) are rows of their own, ServiceName = the capability,
ConsumedQuantity = billable calls in "Requests" (the count unit specification/attributes/unit_format.md
recommends), ResourceId = the provider namespace, SubAccountId = the calling namespace:
* per_call — a Usage row on the consumer's invoice, PricingQuantity calls / 1,000 in "1000 Requests" at
  the price per 1,000 (method none: the same row at price 0, so the use is visible);
* cost_recovery — an allocated charge (split cost allocation as above): the origin charge is the provider
  namespace's cost recovered this period, one "Units" at that cost (ListUnitPrice); each charged caller's
  row carries its part, AllocatedMethodId "CapabilityCostRecovery-Calls", AllocatedRatio = its share of the
  billable calls (largest remainder over every caller, so the ratios of all callers add up to 1; the parts
  of the provider's own calls and of unknown callers stay with the provider and get no row), the origin's
  Tags and the calling unit in AllocatedTags;
* both methods — a Credit row (specification/attributes/credit_handling.md: ChargeCategory "Credit") on
  the provider's invoice for every charge, BilledCost negative, so each InvoiceId still adds up to its
  invoice's total and the whole dataset to the resources' cost: money moves between units, never appears.

Corrections follow specification/attributes/correction_handling.md, accounting style: a reversal row
of the line as issued (quantities and cost negated) and a row of the line as recomputed, ChargeClass
"Correction", billed in a later open billing period with the charge period as originally incurred,
on the correction note's InvoiceId.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from pool_catalog.models import Catalog
from pool_catalog.resources import spec_of

from ..period import Period, iso_utc
from ..rate.capabilities import DEFAULT_CLASS
from ..rate.invoices import UNALLOCATED_NAME, billed_amount, invoice_number, line_text, text
from ..rate.rating import UNALLOCATED, allocate
from ..rate.result import Chargeback
from .csv_tables import csv_text
from .formats import Format, Inputs, register

FOCUS_1_3_COLUMNS: tuple[str, ...] = (
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

REMOVED_IN_1_4 = ("ProviderName", "PublisherName")
FOCUS_COLUMNS: tuple[str, ...] = tuple(c for c in FOCUS_1_3_COLUMNS if c not in REMOVED_IN_1_4)
"""FOCUS 1.4 columns written, in order: the 1.3 ones without the two 1.4 removed."""


class FocusVersion(StrEnum):
    """The FOCUS versions focus.csv can be written in."""

    V1_4 = "1.4"
    V1_3 = "1.3"


FOCUS_VERSIONS = tuple(v.value for v in FocusVersion)
FOCUS_VERSION = FocusVersion.V1_4
"""The version written unless `--focus-version` asks for another."""


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
"""The columns of focus.csv as written (FOCUS 1.4)."""


def columns_of(version: str) -> tuple[str, ...]:
    """The columns of focus.csv in FOCUS `version` (one of FOCUS_VERSIONS)."""
    if version not in FOCUS_VERSIONS:
        raise ValueError(f"FOCUS version {version!r}: write one of {', '.join(FOCUS_VERSIONS)}")
    return (FOCUS_1_3_COLUMNS if version == "1.3" else FOCUS_COLUMNS) + CUSTOM_COLUMNS


def relayout(content: str, version: str) -> str:
    """A focus.csv (either version, as written or issued) in the layout of FOCUS `version`, byte for byte what
    this module writes in it: 1.3's ProviderName and PublisherName are the issuer (InvoiceIssuerName)."""
    target = columns_of(version)
    rows = list(csv.DictReader(io.StringIO(content)))
    header = content.partition("\n")[0].split(",")
    if tuple(header) == target:
        return content
    if tuple(header) not in (columns_of(v) for v in FOCUS_VERSIONS):
        raise ValueError("not a focus.csv this version writes: its header has other columns")
    for row in rows:
        for name in REMOVED_IN_1_4:
            row[name] = row["InvoiceIssuerName"]
    return csv_text(target, ({c: row[c] for c in target} for row in rows))


def files_in_version(files: dict[str, Any], version: str) -> dict[str, Any]:
    """Report files with every focus.csv (the month's, a correction's) in FOCUS `version`."""
    return {n: relayout(c, version) if n.endswith("focus.csv") and isinstance(c, str) else c for n, c in files.items()}


ALLOCATION_METHODS = {
    "proportional": "SharedNamespace-Proportional",
    "even": "SharedNamespace-Even",
}
"""AllocatedMethodId per rates.yaml split (documented in the README's finance guide)."""

RATIO_QUANTUM = Decimal("0.000000001")

COST_RECOVERY_METHOD = "CapabilityCostRecovery-Calls"
"""AllocatedMethodId of cost_recovery capability charges (documented in the README's finance guide)."""
PER_THOUSAND = Decimal(1000)


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


CONSUMED = "capability:"
RECOVERED = "recovered:"
"""Resource prefixes of the ledger's text lines of capability calls: the consumer's charge and the provider's
credit (`capability:identity`, `recovered:identity`), so a closed month's capability money is corrected
like any other line."""


def capability_text_lines(chargeback: Chargeback) -> list[tuple[str, dict[str, str]]]:
    """(unit, text line) of every capability line an invoice bills: the consumed-section lines of the consumer,
    and a credit line of the provider (namespace = the caller, so each caller's credit has its own key) for
    every charge. A unit's capability lines add up to its capability sections."""
    result = []
    for row in chargeback.capability_lines.to_dict("records"):
        method, calls = row["method"], int(row["calls"])
        recovery = method == "cost_recovery"
        amount = billed_amount(row)
        line = {
            "entry": "charge",
            "cluster": row["cluster"],
            "namespace": row["consumer_namespace"],
            "resource": CONSUMED + row["capability"],
            "tier": row["call_class"],
            "rate_effective_from": iso_utc(row["rate_effective_from"]),
            "charge_period_start": iso_utc(row["charge_period_start"]),
            "charge_period_end": iso_utc(row["charge_period_end"]),
            "usage_quantity": str(calls),
            "usage_unit": "Requests",
            "billed_quantity": text(row["share"]) if recovery else text(Decimal(calls) / PER_THOUSAND),
            "unit": "share of recovered cost" if recovery else "1,000 calls",
            "unit_price": text(row["recovered_cost"] if recovery else row["unit_price"]),
            "amount": text(amount),
            "shared_split": "",
            "share": "1",
        }
        if row["consumer_unit"] != UNALLOCATED and row["consumer_namespace"] != row["provider_namespace"]:
            result.append((row["consumer_unit"], line))
        if row["charged"]:
            credit = {**line, "resource": RECOVERED + row["capability"], "amount": text(-amount)}
            result.append((row["provider_unit"], credit))
    return result


def capability_service(catalog: Catalog, capability: str) -> tuple[str, str]:
    """ServiceCategory and ServiceSubcategory rates.yaml declares for a capability (its defaults otherwise)."""
    rate = next((r for r in catalog.rates.capabilities if r.capability == capability), None)
    return (rate.service_category, rate.service_subcategory) if rate else ("Other", "Other (Other)")


def _service(catalog: Catalog, resource: str) -> tuple[str, str, str]:
    """ServiceCategory, ServiceSubcategory, ServiceName of a text line's resource."""
    for prefix in (CONSUMED, RECOVERED):
        if resource.startswith(prefix):
            capability = resource.removeprefix(prefix)
            return (*capability_service(catalog, capability), capability)
    # A resource's come from its spec (FOCUS allowed values).
    focus = spec_of(resource).focus
    return focus.category, focus.subcategory, focus.name


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
    category, subcategory, service = _service(catalog, line["resource"])
    credit = line["resource"].startswith(RECOVERED)
    sku = sku_of(line["resource"], line["tier"])
    where = f"namespace {line['namespace']} on cluster {line['cluster']}"
    tier = f" {line['tier']}" if line["tier"] else ""
    description = (
        f"{service}{tier} calls of {where}: credit to the provider" if credit else f"{service}{tier} used by {where}"
    )
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
        "ChargeCategory": "Credit" if credit else "Usage",
        "ChargeClass": charge_class,
        "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": line["charge_period_end"],
        "ChargePeriodStart": line["charge_period_start"],
        "ConsumedQuantity": "" if credit else line["usage_quantity"],  # null unless ChargeCategory is Usage
        "ConsumedUnit": "" if credit else line["usage_unit"],
        "ContractedCost": line["amount"],
        "ContractedUnitPrice": "" if credit else line["unit_price"],  # a credit has no price or quantity
        "EffectiveCost": line["amount"],
        "HostProviderName": issuer,
        "InvoiceId": invoice_id,
        "InvoiceIssuerName": issuer,
        "ListCost": line["amount"],
        "ListUnitPrice": "" if credit else line["unit_price"],
        "PricingCategory": "" if credit else "Standard",
        "PricingQuantity": "" if credit else line["billed_quantity"],
        "PricingUnit": "" if credit else line["unit"],
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
    """The rows of focus.csv, every value as the text written: one per rated line, then the capability rows."""
    records = chargeback.lines.to_dict("records")
    lines = [text_line(row) for row in records]
    resources = [
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
    return resources + capability_focus_rows(chargeback)


def capability_focus_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """FOCUS rows of the capability lines: the consumer's charge (or zero-cost use, method none) and, for every
    charge, the provider's credit."""
    frame = chargeback.capability_lines
    if frame.empty:
        return []
    records = frame.to_dict("records")
    ratios = _recovery_ratios(records)
    rows = []
    for index, row in enumerate(records):
        consumer_side = row["consumer_unit"] != UNALLOCATED and row["consumer_namespace"] != row["provider_namespace"]
        if consumer_side and (row["charged"] or row["method"] == "none"):
            rows.append(_capability_row(chargeback, row, ratios.get(index), credit=False))
        if row["charged"]:
            rows.append(_capability_row(chargeback, row, None, credit=True))
    return rows


def _recovery_ratios(records: list[dict[str, Any]]) -> dict[int, Decimal]:
    """Index of a cost_recovery line → its share of the billable calls of its capability version, rounded to
    1e-9 by largest remainder over every caller (charged or not), so all callers' ratios add up to 1."""
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, row in enumerate(records):
        if row["method"] == "cost_recovery" and row["calls"] > 0:
            groups[(row["cluster"], row["capability"], str(row["rate_effective_from"]))].append(i)
    ratios: dict[int, Decimal] = {}
    for members in groups.values():
        weights = [Fraction(int(records[i]["calls"])) for i in members]
        for i, value in zip(members, allocate(Decimal(1), weights, RATIO_QUANTUM), strict=True):
            ratios[i] = value
    return ratios


def _capability_row(
    chargeback: Chargeback, row: dict[str, Any], ratio: Decimal | None, *, credit: bool
) -> dict[str, str]:
    catalog, issuer = chargeback.catalog, chargeback.catalog.rates.issuer.name
    units = {u.id: u for u in catalog.units}
    capability, cluster = row["capability"], row["cluster"]
    provider_ns, consumer_ns = row["provider_namespace"], row["consumer_namespace"]
    billed_to = row["provider_unit"] if credit else row["consumer_unit"]
    unit = units.get(billed_to)
    provider = units.get(row["provider_unit"])
    consumer = units.get(row["consumer_unit"])
    amount = billed_amount(row)
    cost = text(-amount if credit and amount else amount)
    call_class = "" if row["call_class"] in ("", DEFAULT_CLASS) else row["call_class"]
    sku = f"capability-{capability}" + (f"-{call_class}" if call_class else "")
    effective = iso_utc(row["rate_effective_from"])
    method = row["method"]
    allocated = method == "cost_recovery" and not credit
    # The provider namespace's Tags are the origin's: an allocated charge keeps them, the caller goes to
    # AllocatedTags (which must not repeat a key of Tags).
    provider_tags = {"business_unit": row["provider_unit"], "namespace": provider_ns}
    if provider and provider.cost_center:
        provider_tags["cost_center"] = provider.cost_center
    consumer_tags: dict[str, Any] = {"business_unit": row["consumer_unit"], "namespace": consumer_ns}
    if consumer and consumer.cost_center:
        consumer_tags["cost_center"] = consumer.cost_center
    calls = int(row["calls"])
    if credit:
        description = (
            f"{capability} calls of namespace {consumer_ns} ({row['consumer_unit']}) charged by {method}: credit"
        )
        consumed = pricing = unit_price = unit_name = pricing_unit = ""
    elif allocated:
        description = f"{capability} ({provider_ns} on cluster {cluster}) cost recovered by calls from {consumer_ns}"
        consumed, unit_name = str(calls), "Requests"
        pricing, pricing_unit, unit_price = text(ratio or Decimal(0)), "Units", text(row["recovered_cost"])
    else:
        description = (
            f"{calls:,} {capability} calls from {consumer_ns} to {provider_ns} on cluster {cluster} ({method})"
        )
        consumed, unit_name = str(calls), "Requests"
        pricing, pricing_unit = text(Decimal(calls) / PER_THOUSAND), "1000 Requests"
        unit_price = text(row["unit_price"])
    details = ""
    if allocated:
        element = f'{{"AllocatedRatio":{text(ratio or Decimal(0))},"UsageQuantity":{calls},"UsageUnit":"Requests"}}'
        details = (
            f'{{"Elements":[{element}],"x_Capability":{json.dumps(capability)},'
            f'"x_RecoveredCost":"{text(row["recovered_cost"])}"}}'
        )
    tags = provider_tags if credit or allocated else consumer_tags
    category, subcategory = capability_service(catalog, capability)
    account_ns = provider_ns if credit else consumer_ns
    return {
        "AllocatedMethodDetails": details,
        "AllocatedMethodId": COST_RECOVERY_METHOD if allocated else "",
        "AllocatedResourceId": f"{cluster}/{consumer_ns}" if allocated else "",
        "AllocatedResourceName": consumer_ns if allocated else "",
        "AllocatedTags": _json({f"consumer_{k}": v for k, v in consumer_tags.items()}) if allocated else "",
        "BilledCost": cost,
        "BillingAccountId": billed_to,
        "BillingAccountName": unit.display_name if unit else UNALLOCATED_NAME,
        "BillingAccountType": "Business Unit",
        "BillingCurrency": row["currency"],
        "BillingPeriodEnd": iso_utc(chargeback.period.end),
        "BillingPeriodStart": iso_utc(chargeback.period.start),
        "ChargeCategory": "Credit" if credit else "Usage",
        "ChargeClass": "",
        "ChargeDescription": description,
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": iso_utc(row["charge_period_end"]),
        "ChargePeriodStart": iso_utc(row["charge_period_start"]),
        "ConsumedQuantity": consumed,
        "ConsumedUnit": unit_name,
        "ContractedCost": cost,
        "ContractedUnitPrice": unit_price,
        "EffectiveCost": cost,
        "HostProviderName": issuer,
        "InvoiceId": invoice_number(chargeback, billed_to),
        "InvoiceIssuerName": issuer,
        "ListCost": cost,
        "ListUnitPrice": unit_price,
        "PricingCategory": "" if credit else "Standard",
        "PricingQuantity": pricing,
        "PricingUnit": pricing_unit,
        "ResourceId": f"{cluster}/{provider_ns}",
        "ResourceName": provider_ns,
        "ResourceType": "Kubernetes Namespace",
        "ServiceCategory": category,
        "ServiceName": capability,
        "ServiceProviderName": issuer,
        "ServiceSubcategory": subcategory,
        "SkuId": sku,
        "SkuPriceId": f"{sku}@{effective}",
        "SubAccountId": f"{cluster}/{account_ns}",
        "SubAccountName": account_ns,
        "SubAccountType": "Kubernetes Namespace",
        "Tags": _json(tags),
        "x_BusinessUnit": billed_to,
        "x_CostCenter": unit.cost_center if unit else "",
        "x_Cluster": cluster,
        "x_Namespace": account_ns,
        "x_Resource": f"capability:{capability}",
        "x_StorageTier": "",
        "x_BillingMode": method,
        "x_RateEffectiveFrom": effective,
    }


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


register(Format("focus", "focus.csv (FinOps FOCUS 1.4; --focus-version 1.3)", ("chargeback",), render=_focus_file))
