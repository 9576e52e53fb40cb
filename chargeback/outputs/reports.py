"""Write one period's reports: usage.csv, line_items.csv, idle.csv, focus.csv, invoices/<unit>.json|.html
and finance-summary.html (with inline SVG charts, and month over month when the previous period's
invoices exist), optionally each HTML printed to PDF.

Everything is rendered into a staging folder and published as one set (`report_set`): a failure or a
kill leaves the earlier set whole, and files people put in the folder are never deleted. Rows are
sorted and numbers are fixed-point text: the same data gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from pool_catalog.pricing import minor_unit

from ..collect.usage import usage_unit
from ..errors import OutputError
from ..rate.idle import REASONS, allocated_resources, level_unit
from ..rate.invoices import UNALLOCATED_NAME, build_invoices, finance_summary, text
from ..rate.rating import from_nano, nano
from ..rate.result import Chargeback
from . import charts
from .chart_data import AllocationUse, allocation_use, daily_costs, period_days
from .focus import COLUMNS as FOCUS_COLUMNS
from .focus import focus_rows
from .history import PreviousPeriod, default_previous_dir, month_over_month, read_previous
from .pdf import print_pdfs
from .report_set import publish

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
)
IDLE_COLUMNS = (
    "business_unit",
    "namespace",
    "resource",
    "tier",
    "allocated",
    "used_avg",
    "used_p95",
    "utilization",
    "idle_cost",
    "recommended_allocation",
    "monthly_savings",
    "reason",
    "pvc",
)
NUMERIC_COLUMNS = frozenset(
    {
        *("used", "requested", "allocated"),
        *("usage_quantity", "billed_quantity", "unit_price", "amount"),
        *("used_avg", "used_p95", "utilization", "idle_cost", "recommended_allocation", "monthly_savings"),
        *("BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost"),
        *("ListUnitPrice", "PricingQuantity"),
    }
)
"""Columns of the CSVs that hold numbers (fixed-point text, or empty): written as they are, negative ones too."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection")."""


# ------------------------------------------------------------------ rows


def usage_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """Period totals per (cluster, namespace, resource, tier) of every namespace seen, owned or not.

    Summed as exact nano units; requested/allocated are empty where no hour had one."""
    frame = chargeback.usage
    if frame.empty:
        return []
    work = frame[["cluster", "namespace", "business_unit", "resource", "tier"]].astype(object).copy()
    for column in ("used", "requested", "allocated"):
        work[column] = nano(frame[column])
        work[f"has_{column}"] = frame[column].notna().to_numpy()
    sums = work.groupby(["cluster", "namespace", "business_unit", "resource", "tier"], sort=True).sum()
    rows = []
    for (cluster, namespace, unit_id, resource, tier), values in sums.iterrows():
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
    return [
        {column: text(v) if isinstance(v := line[column], Decimal) else v for column in LINE_COLUMNS}
        for line in chargeback.lines.to_dict("records")
    ]


def idle_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    return [
        {column: text(v) if isinstance(v := row[column], Decimal) else v for column in IDLE_COLUMNS}
        for row in chargeback.idle.to_dict("records")
    ]


def csv_text(columns: Iterable[str], rows: Iterable[dict[str, str]]) -> str:
    """CSV of `rows`; text cells that a spreadsheet would run as a formula (a namespace or display name
    starting with =, +, -, @, TAB or CR) are prefixed with a single quote, as OWASP advises, so they show
    as typed; a carriage return inside a cell becomes a line break. Numeric columns are checked to hold
    numbers and written unchanged."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows({column: _cell(column, value) for column, value in row.items()} for row in rows)
    return buffer.getvalue()


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


# ------------------------------------------------------------------ HTML


def html_environment(currency: str) -> jinja2.Environment:
    """Jinja with autoescape on (label values are untrusted) and the number filters of the reports."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chargeback.outputs", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    places = money_places(currency)
    env.filters["money"] = lambda value: f"{Decimal(value):,.{places}f}"
    env.filters["signed_money"] = lambda value: f"{Decimal(value):+,.{places}f}"
    env.filters["quantity"] = _quantity
    env.filters["percent"] = lambda value: "—" if value is None else f"{Decimal(value) * 100:,.1f} %"
    env.filters["signed_percent"] = lambda value: "—" if value is None else f"{Decimal(value) * 100:+,.1f} %"
    env.filters["css_string"] = css_string
    env.globals["reasons"] = REASONS
    env.globals["level_units"] = {name: level_unit(name) for name in allocated_resources()}
    return env


def css_string(value: str) -> Markup:
    """A quoted CSS string for a <style> element: everything but letters, digits and spaces as a CSS
    escape (its trailing space ends the escape and is not shown), so no label can close the string
    or the element."""
    escaped = "".join(c if c.isalnum() or c == " " else f"\\{ord(c):x} " for c in str(value))
    return Markup(f'"{escaped}"')


def money_places(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for CNY, 0 for JPY)."""
    return -minor_unit(currency).as_tuple().exponent


def _quantity(value: str, places: int = 3) -> str:
    """Quantities rounded for reading (the JSON and CSV keep every digit)."""
    return f"{Decimal(value):,.{places}f}"


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)


# ------------------------------------------------------------------ writing


# ------------------------------------------------------------------ charts


def _resource_label(resource: str, tier: str) -> str:
    return f"{resource} ({tier})" if tier else resource


def summary_charts(
    chargeback: Chargeback,
    invoices: list[dict[str, Any]],
    daily: dict[str, list[Decimal]],
    levels: dict[str, list[AllocationUse]],
) -> dict[str, Markup]:
    """The finance summary's charts: cost per unit by resource, daily cost per unit, allocation vs use."""
    currency, places = chargeback.currency, money_places(chargeback.currency)
    names = {inv["business_unit"]["id"]: inv["business_unit"]["display_name"] for inv in invoices}
    bars = [
        charts.StackedBar(
            names[unit_id],
            [
                charts.Segment(_resource_label(r["resource"], r["tier"]), Decimal(r["amount"]))
                for r in inv["by_resource"]
            ],
        )
        for inv in invoices
        if Decimal(inv["total"]) and (unit_id := inv["business_unit"]["id"])
    ]
    series = top_series([(names.get(unit_id, UNALLOCATED_NAME), days) for unit_id, days in daily.items() if any(days)])
    levels = [
        charts.Level(level.label, level.allocated, level.used, level.unit, group=names.get(unit_id, unit_id))
        for unit_id, unit_levels in levels.items()
        for level in unit_levels
    ]
    period = chargeback.period.label
    result = {}
    if bars:
        result["cost_by_resource"] = charts.stacked_bars(
            bars,
            title=f"Cost per business unit by resource, {period}",
            description=f"Horizontal bars, one per business unit, split by resource; amounts in {currency}.",
            chart_id="cost-by-resource",
            currency=currency,
            places=places,
        )
    if series:
        result["daily"] = _daily_chart(
            chargeback,
            series,
            f"Daily cost per business unit, {period}",
            f"One line per business unit: its cost on each UTC day of the period, in {currency}.",
        )
    if levels:
        result["allocation"] = charts.allocation_bars(
            levels,
            title=f"Average allocation and use per business unit, {period}",
            description="Per unit and resource: the quota held on average (outline) and the average use (filled).",
            chart_id="allocation-use",
        )
    return result


MAX_SERIES = len(charts.DASHES)
"""Lines a trend chart draws apart (one dash pattern each); further units are summed into one line."""


def top_series(series: list[tuple[str, list[Decimal]]]) -> list[tuple[str, list[Decimal]]]:
    """The series with the largest totals, and the rest summed as "Other units (n)" when there are too many."""
    if len(series) <= MAX_SERIES:
        return series
    ranked = sorted(series, key=lambda item: (-sum(item[1]), item[0]))
    kept, rest = ranked[: MAX_SERIES - 1], ranked[MAX_SERIES - 1 :]
    other = [sum(day, Decimal(0)) for day in zip(*(values for _, values in rest), strict=True)]
    return [*kept, (f"Other units ({len(rest)})", other)]


def _daily_chart(
    chargeback: Chargeback, series: list[tuple[str, list[Decimal]]], title: str, description: str
) -> Markup:
    currency = chargeback.currency
    days = period_days(chargeback)
    return charts.daily_trend(
        series,
        days,
        title=title,
        description=description,
        chart_id="daily-cost",
        currency=currency,
        places=money_places(currency),
    )


def invoice_charts(
    chargeback: Chargeback,
    invoice: dict[str, Any],
    daily: dict[str, list[Decimal]],
    levels: dict[str, list[AllocationUse]],
) -> dict[str, Markup]:
    """An invoice's charts: its daily cost, and its allocation against use."""
    unit_id = invoice["business_unit"]["id"]
    name = invoice["business_unit"]["display_name"]
    period, currency = chargeback.period.label, chargeback.currency
    result = {}
    if any(daily.get(unit_id, ())):
        result["daily"] = _daily_chart(
            chargeback,
            [(name, daily[unit_id])],
            f"Daily cost of {name}, {period}",
            f"Cost on each UTC day of the period, in {currency}; the days add up to the invoice total.",
        )
    if levels.get(unit_id):
        result["allocation"] = charts.allocation_bars(
            [charts.Level(level.label, level.allocated, level.used, level.unit) for level in levels[unit_id]],
            title=f"Average allocation and use of {name}, {period}",
            description="Per resource: the quota held on average (outline) and the average use (filled).",
            chart_id="allocation-use",
        )
    return result


# ------------------------------------------------------------------ files


def report_files(
    chargeback: Chargeback, previous: PreviousPeriod | None = None, issue: dict[str, Any] | None = None
) -> dict[str, str]:
    """Relative path → file content of every report of the period (`previous`: month over month; `issue`: the
    ledger issue the invoices belong to, printed on each as its fingerprint)."""
    invoices = build_invoices(chargeback)
    if issue is not None:
        invoices = [{**invoice, "issue": issue} for invoice in invoices]
    env = html_environment(chargeback.currency)
    daily, levels = daily_costs(chargeback), allocation_use(chargeback)
    comparison = month_over_month(previous, invoices) if previous else None
    changes = {row["id"]: row for row in comparison["units"]} if comparison else {}
    files = {
        "usage.csv": csv_text(USAGE_COLUMNS, usage_rows(chargeback)),
        "line_items.csv": csv_text(LINE_COLUMNS, line_rows(chargeback)),
        "idle.csv": csv_text(IDLE_COLUMNS, idle_rows(chargeback)),
        "focus.csv": csv_text(FOCUS_COLUMNS, focus_rows(chargeback)),
    }
    for invoice in invoices:
        unit_id = invoice["business_unit"]["id"]
        files[f"invoices/{unit_id}.json"] = json.dumps(invoice, indent=2, ensure_ascii=False) + "\n"
        files[f"invoices/{unit_id}.html"] = render(
            env,
            "invoice.html.j2",
            invoice=invoice,
            charts=invoice_charts(chargeback, invoice, daily, levels),
            change={**changes[unit_id], "previous_period": comparison["previous_period"]} if comparison else None,
        )
    files["finance-summary.html"] = render(
        env,
        "finance-summary.html.j2",
        summary=finance_summary(chargeback, invoices),
        charts=summary_charts(chargeback, invoices, daily, levels),
        month_over_month=comparison,
    )
    return files


def previous_period(chargeback: Chargeback, out: Path, previous: Path | None) -> PreviousPeriod | None:
    """The previous period's totals: from `previous` if given, else the sibling directory named after it."""
    if previous is not None:
        return read_previous(Path(previous), chargeback.period, chargeback.currency, explicit=True)
    directory = default_previous_dir(out.resolve(), chargeback.period)
    if directory is None:
        return None
    return read_previous(directory, chargeback.period, chargeback.currency, explicit=False)


def write_reports(
    chargeback: Chargeback,
    out: Path,
    *,
    previous: Path | None = None,
    pdf: bool = False,
    chromium: str | None = None,
    render_files: Callable[[Chargeback], dict[str, str]] | None = None,
) -> list[Path]:
    """Render every report (and with `pdf` print each HTML to PDF) into a staging folder, then publish
    them in `out` as one set (`report_set`); returns the published paths, sorted. `previous`: directory
    of the previous period's reports. On failure the previously published set stays as it was."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file: give a directory for the reports")
    if render_files is None:
        history = previous_period(chargeback, out, previous)

        def render_files(c: Chargeback) -> dict[str, str]:
            return report_files(c, history)

    files = render_files(chargeback)

    def stage(staging: Path) -> list[str]:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", newline="")
        names = list(files)
        if pdf:
            pages = [name for name in names if name.endswith(".html")]
            print_pdfs(
                [(staging / n, staging / pdf_name(n)) for n in pages],
                chromium,
                dated=chargeback.period.end,
                bases=[(out.resolve() / n).as_uri() for n in pages],  # links lead to the published reports
            )
            names += [pdf_name(n) for n in pages]
        return names

    return publish(out, stage)


def pdf_name(html_name: str) -> str:
    return html_name.removesuffix(".html") + ".pdf"
