"""The CSV reports: usage.csv, line_items.csv and idle.csv, and the CSV writing every CSV format shares
(`csv_text`: OWASP formula guard, numbers checked). Rows are sorted and numbers are fixed-point text.

The spreadsheet CSVs start with a UTF-8 byte-order mark (rates.yaml `csv_bom`, default true): without one,
spreadsheet tools on Windows read UTF-8 as the local code page and garble names like 数据洞察事业部. focus.csv
never has one: its readers are FOCUS tools, which expect plain UTF-8. Read these files as `utf-8-sig`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal

import numpy as np

from ..collect.usage import usage_unit
from ..errors import OutputError
from ..grouping import group_rows
from ..period import iso_utc
from ..rate.invoices import UNALLOCATED_NAME, text
from ..rate.rating import from_nano, nano
from ..rate.result import Chargeback
from .formats import Format, Inputs, register

USAGE_COLUMNS = (
    "period",
    "cluster",
    "namespace",
    "business_unit",
    "resource",
    "tier",
    "used",
    "requested",
    "allocated",
    "unit",
)
LINE_COLUMNS = (
    "period",
    "business_unit",
    "cost_center",
    "cluster",
    "namespace",
    "resource",
    "tier",
    "usage_quantity",
    "billed_quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
    "rate_effective_from",
    "business_unit_name",
)
"""line_items.csv; `rate_effective_from` is the rate version a line is priced at: a line is split at a version
only where its price changed, each part carrying its own version. `business_unit_name` is the unit's display
name as on its invoice (数据洞察事业部 …), for the spreadsheet reader."""
IDLE_COLUMNS = (
    "business_unit",
    "namespace",
    "resource",
    "tier",
    "basis",
    "allocated",
    "used_avg",
    "used_peak",
    "requests_peak",
    "utilization",
    "idle_value",
    "capacity_held",
    "unit_pays",
    "recommended_allocation",
    "advice_basis",
    "reason",
    "pvc",
)
"""idle.csv: `idle_value` is each row's unused allocation at the rate card (information); `capacity_held` is
the same figure counted once per allocation (on its quota row where the quota is flagged, 0 on its requests
rows) and `unit_pays` what the unit is billed for it (0 under usage billing): each column sums to the invoices'
and the finance summary's idle figures."""
CAPABILITY_COLUMNS = (
    "period",
    "cluster",
    "capability",
    "method",
    "provider_unit",
    "provider_namespace",
    "consumer_unit",
    "consumer_cost_center",
    "consumer_namespace",
    "call_class",
    "calls",
    "not_billable_calls",
    "unit_price",
    "share",
    "recovered_cost",
    "amount",
    "charged",
    "declared",
    "currency",
    "rate_effective_from",
)
"""capability_lines.csv: every rated capability line; `amount` moves from consumer to provider where `charged`."""

NUMERIC_COLUMNS = frozenset(
    {
        *("used", "requested", "allocated"),
        *("usage_quantity", "billed_quantity", "unit_price", "amount"),
        *("used_avg", "used_peak", "requests_peak", "utilization", "idle_value", "capacity_held", "unit_pays"),
        "recommended_allocation",
        *("BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost"),
        *("ListUnitPrice", "PricingQuantity"),
        *("calls", "not_billable_calls", "share", "recovered_cost"),
    }
)
"""Columns of the CSVs that hold numbers (fixed-point text, or empty): written as they are, negative ones too."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
"""The UTF-8 byte-order mark (EF BB BF once encoded) that tells a spreadsheet tool the file is UTF-8."""
"""Characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection")."""


# ------------------------------------------------------------------ rows


def usage_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """Period totals per (cluster, namespace, resource, tier) of every namespace seen, owned or not.

    Summed as exact nano units; requested/allocated are empty where no hour had one."""
    frame = chargeback.usage
    if frame.empty:
        return []
    keys = ["cluster", "namespace", "business_unit", "resource", "tier"]
    groups = group_rows({key: frame[key] for key in keys})  # one folded key per row: a month is millions of rows
    sums = groups.keys
    for column in ("used", "requested", "allocated"):
        values = frame[column].to_numpy()
        sums[column] = groups.sum(nano(values))
        sums[f"has_{column}"] = np.bincount(groups.codes[~np.isnan(values)], minlength=len(groups)) > 0
    rows = []
    for values in sums.to_dict("records"):
        cluster, namespace, unit_id, resource, tier = (values[key] for key in keys)
        row = {
            "period": chargeback.period.label,
            "cluster": cluster,
            "namespace": namespace,
            "business_unit": unit_id,
            "resource": resource,
            "tier": tier,
        }
        for column in ("used", "requested", "allocated"):
            row[column] = text(from_nano(values[column])) if values[f"has_{column}"] else ""
        row["unit"] = usage_unit(resource)
        rows.append(row)
    return rows


def line_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    names = {unit.id: unit.display_name for unit in chargeback.catalog.units}
    return [
        {
            **{column: _cell_text(line[column]) for column in LINE_COLUMNS[:-1]},
            "business_unit_name": names.get(line["business_unit"], UNALLOCATED_NAME),
        }
        for line in chargeback.lines.to_dict("records")
    ]


def idle_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    return [
        {
            column: text(v) if isinstance(v := row[column], Decimal) else "" if v is None else v
            for column in IDLE_COLUMNS
        }
        for row in chargeback.idle.to_dict("records")
    ]


def capability_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    return [
        {column: _cell_text(row[column]) for column in CAPABILITY_COLUMNS}
        for row in chargeback.capability_lines.to_dict("records")
    ]


def _cell_text(value: object) -> str:
    if isinstance(value, Decimal):
        return text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return iso_utc(value)  # type: ignore[arg-type]
    return str(value)


def csv_text(columns: Iterable[str], rows: Iterable[dict[str, str]], *, bom: bool = False) -> str:
    """CSV of `rows` (after a byte-order mark with `bom`); text cells that a spreadsheet would run as a formula
    (a namespace or display name starting with =, +, -, @, TAB or CR) are prefixed with a single quote, as
    OWASP advises, so they show as typed; a carriage return inside a cell becomes a line break. Numeric columns
    are checked to hold numbers and written unchanged."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows({column: _cell(column, value) for column, value in row.items()} for row in rows)
    return (BOM if bom else "") + buffer.getvalue()


def csv_records(content: str) -> list[dict[str, str]]:
    """The rows of a CSV written by `csv_text`, with or without a byte-order mark (as `utf-8-sig` reads it)."""
    return list(csv.DictReader(io.StringIO(content.removeprefix(BOM))))


def _cell(column: str, value: object) -> object:
    if column in NUMERIC_COLUMNS:
        if value not in ("", None) and not _is_number(value):
            raise OutputError(f"CSV column {column} got {value!r}, which is not a number; this is a bug, report it")
        return value
    if isinstance(value, str):
        if value.startswith(FORMULA_STARTS):
            value = "'" + value
        # The csv module quotes only the line terminator (\n) of these files, so a bare CR would end the
        # row in some readers: written as a line break inside the quoted cell instead.
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def _is_number(value: object) -> bool:
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return True
    try:
        return Decimal(str(value)).is_finite()
    except ArithmeticError:
        return False


def _tables(inputs: Inputs) -> dict[str, str]:
    chargeback = inputs.chargeback
    bom = chargeback.catalog.rates.csv_bom
    tables = {
        "usage.csv": csv_text(USAGE_COLUMNS, usage_rows(chargeback), bom=bom),
        "line_items.csv": csv_text(LINE_COLUMNS, line_rows(chargeback), bom=bom),
        "idle.csv": csv_text(IDLE_COLUMNS, idle_rows(chargeback), bom=bom),
    }
    if not chargeback.capability_lines.empty:  # only with calls: a period without any keeps its files as they were
        tables["capability_lines.csv"] = csv_text(CAPABILITY_COLUMNS, capability_rows(chargeback), bom=bom)
    return tables


register(
    Format(
        "csv",
        "usage.csv, line_items.csv, idle.csv, capability_lines.csv (when calls were counted)",
        ("chargeback",),
        render=_tables,
    )
)
