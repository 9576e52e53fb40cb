"""The HTML reports: invoices/<unit>.html and finance-summary.html, with inline SVG charts and, when the
previous period's invoices exist, month over month. Templates are in `templates/`; they read each
document's JSON form (the same text the invoice JSON holds), so HTML and JSON cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import jinja2
from markupsafe import Markup

from pool_catalog.numbers import format_money, format_number, format_percent, money_places

from ..rate.documents import Invoice
from ..rate.idle import REASONS, allocated_resources, level_unit
from ..rate.invoices import UNALLOCATED_NAME
from ..rate.result import Chargeback
from . import charts
from .chart_data import AllocationUse, allocation_use, daily_costs, period_days
from .formats import Format, Inputs, register

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
    # The one number format of every report, table and message (pool_catalog.numbers).
    env.filters["money"] = lambda value: format_money(value, currency)
    env.filters["signed_money"] = lambda value: format_money(value, currency, sign=True)
    env.filters["quantity"] = _quantity
    env.filters["percent"] = lambda value: "—" if value is None else format_percent(value)
    env.filters["signed_percent"] = lambda value: "—" if value is None else format_percent(value, sign=True)
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


def _quantity(value: str, places: int = 3) -> str:
    """Quantities rounded for reading (the JSON and CSV keep every digit)."""
    return format_number(Decimal(value), places)


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    return breakable(env.get_template(template).render(**context))


LONG_RUN = 30
"""Letters without a break opportunity that text may hold before a line may break inside them."""
_SKIPPED = re.compile(r"(<(style|script|svg|title)\b.*?</\2>|<[^>]*>)", re.S | re.I)
_RUN = re.compile(rf"[^\s\-/&;<>\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]{{{LONG_RUN + 1},}}")


def breakable(page: str) -> str:
    """`page` with a <wbr> every 20 letters of any run over LONG_RUN letters without a break opportunity (a
    name from a catalog or a label like "Zahlungsverkehrsabwicklungs…"), in text only (not in tags, styles,
    scripts or charts). Tables wrap only between words (report.css), so such a name needs these to stay
    inside the page; ordinary words, numbers and hyphenated names are left as they are."""

    def split(run: re.Match[str]) -> str:
        text = run.group(0)
        return "<wbr>".join(text[i : i + 20] for i in range(0, len(text), 20))

    parts = _SKIPPED.split(page)
    out, i = [], 0
    while i < len(parts):
        out.append(_RUN.sub(split, parts[i]))
        if i + 1 < len(parts):
            out.append(parts[i + 1])
        i += 3
    return "".join(out)


# ------------------------------------------------------------------ charts


def _resource_label(resource: str, tier: str) -> str:
    return f"{resource} ({tier})" if tier else resource


CONSUMED = "Capabilities consumed"
RECOVERED = "Recovered from consumers (credit)"


def daily_note(capabilities: bool, zone: str) -> str:
    """What the days of a daily chart (days of the billing time zone `zone`) add up to, printed under its axis."""
    if capabilities:
        return f"{zone} days; a unit's days add up to its resources' total, capability calls are not in them"
    return f"{zone} days; the days of a unit add up to its invoice total"


def capability_parts(invoice: Invoice) -> list[tuple[str, Decimal]]:
    """The parts of an invoice total that are no resource's use (its capability sections), as (label,
    amount): the charts of resources leave them out, so their captions name them."""
    parts = []
    if invoice.capabilities_consumed is not None:
        parts.append((CONSUMED, invoice.capabilities_consumed.total))
    if invoice.recovered_from_consumers is not None:
        parts.append((RECOVERED, invoice.recovered_from_consumers.total))
    return parts


def resources_total(invoice: Invoice) -> Decimal:
    """What the unit's resources cost: the invoice total without its capability sections."""
    return sum((row.amount for row in invoice.by_resource), Decimal(0))


def summary_charts(
    chargeback: Chargeback,
    invoices: Sequence[Invoice],
    daily: dict[str, list[Decimal]],
    levels: dict[str, list[AllocationUse]],
) -> dict[str, Markup]:
    """The finance summary's charts: cost per unit by resource, daily cost per unit, allocation vs use."""
    currency, places = chargeback.currency, money_places(chargeback.currency)
    names = {inv.business_unit.id: inv.business_unit.display_name for inv in invoices}
    bars = [
        charts.StackedBar(
            names[unit_id],
            [
                *(charts.Segment(_resource_label(r.resource, r.tier), r.amount) for r in inv.by_resource),
                *(charts.Segment(label, amount) for label, amount in capability_parts(inv)),
            ],
        )
        for inv in invoices
        if inv.total and (unit_id := inv.business_unit.id)
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
            f"One line per business unit: the cost of its resources on each {chargeback.period.time_zone} day "
            f"of the period, in {currency}.",
            daily_note(any(capability_parts(inv) for inv in invoices), chargeback.period.time_zone),
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
    chargeback: Chargeback, series: list[tuple[str, list[Decimal]]], title: str, description: str, note: str
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
        note=note,
    )


def invoice_charts(
    chargeback: Chargeback,
    invoice: Invoice,
    daily: dict[str, list[Decimal]],
    levels: dict[str, list[AllocationUse]],
) -> dict[str, Markup]:
    """An invoice's charts: its daily cost, and its allocation against use."""
    unit_id = invoice.business_unit.id
    name = invoice.business_unit.display_name
    period, currency = chargeback.period.label, chargeback.currency
    result = {}
    if any(daily.get(unit_id, ())):
        result["daily"] = _daily_chart(
            chargeback,
            [(name, daily[unit_id])],
            f"Daily cost of {name}, {period}",
            f"Cost on each {chargeback.period.time_zone} day of the period, in {currency}; the days add up to the "
            + ("resources' total (capability calls are not in it)." if capability_parts(invoice) else "invoice total."),
            daily_note(bool(capability_parts(invoice)), chargeback.period.time_zone),
        )
    if levels.get(unit_id):
        result["allocation"] = charts.allocation_bars(
            [charts.Level(level.label, level.allocated, level.used, level.unit) for level in levels[unit_id]],
            title=f"Average allocation and use of {name}, {period}",
            description="Per resource: the quota held on average (outline) and the average use (filled).",
            chart_id="allocation-use",
        )
    return result


def _pages(inputs: Inputs) -> dict[str, str]:
    chargeback, comparison = inputs.chargeback, inputs.month_over_month
    env = html_environment(chargeback.currency)
    daily, levels = daily_costs(chargeback), allocation_use(chargeback)
    changes = {row["id"]: row for row in comparison["units"]} if comparison else {}
    files = {}
    for invoice in inputs.invoices:
        unit_id = invoice.business_unit.id
        files[f"invoices/{unit_id}.html"] = render(
            env,
            "invoice.html.j2",
            invoice=invoice.model_dump(mode="json"),
            charts=invoice_charts(chargeback, invoice, daily, levels),
            resources_total=resources_total(invoice),
            left_out=capability_parts(invoice),
            change={**changes[unit_id], "previous_period": comparison["previous_period"]} if comparison else None,
        )
    files["finance-summary.html"] = render(
        env,
        "finance-summary.html.j2",
        summary=inputs.summary.model_dump(mode="json"),
        charts=summary_charts(chargeback, inputs.invoices, daily, levels),
        left_out=[
            (inv.business_unit.display_name, label, amount)
            for inv in inputs.invoices
            for label, amount in capability_parts(inv)
        ],
        month_over_month=comparison,
    )
    return files


register(
    Format(
        "html",
        "invoices/<unit>.html, finance-summary.html",
        ("chargeback", "invoices", "summary", "history"),
        render=_pages,
    )
)
