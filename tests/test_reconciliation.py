"""Every total a person sees ties out: on every output of a month, each business unit's figure equals its
invoice total to the cent, or the output says what it leaves out and the figure equals the invoice's minus
exactly that.

Months: the demo's 2026-09 and 2026-10 (run once per module into a tmp folder, as `make demo` does, with
the month close into a SQLite ledger while its Prometheus serves) and the golden month
(tests/golden/chargeback-2026-10/). The reference is the invoice JSON. Every other output has one reader
here returning per-unit figures as Decimal, and a line in `OUTPUTS` saying which invoice figure it must
show: a new output is one function and one line.

Figures an output shows (what `Figure` names):
- total: the invoice total (resources + capabilities consumed + credits for capabilities recovered);
- resources: the invoice total without its capability sections (outputs that say so: the line items,
  the charts of days, the exporter's per-line cost and the dashboard panels made from it);
- idle held / idle pays: the invoice's idle figures, the pool capacity idle allocations hold (each allocation
  once) and what the unit pays for idle (its unused requests under request or max billing).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console
from typer.testing import CliRunner

from chargeback.cli import app as chargeback_app
from chargeback.exporter import snapshot_of
from chargeback.outputs.pdf import print_pdfs
from chargeback.period import Period
from chargeback.rate.result import Chargeback
from pool_demo.demo import run_demo
from pool_demo.local_prometheus import LocalPrometheus, free_port
from tests.chargeback.test_exporter import query_for, wait_for_series

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "catalog"
GOLDEN = ROOT / "tests" / "golden" / "chargeback-2026-10"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
DEMO_MONTHS = (Period(2026, 9), Period(2026, 10))
CENT = Decimal("0.01")
NANO = Decimal("1e-9")

Totals = dict[str, Decimal]
"""Business unit id → a figure of that unit."""


class Figure(Enum):
    TOTAL = "total"
    RESOURCES = "resources"
    IDLE_HELD = "idle capacity held"
    IDLE_PAYS = "idle the unit pays"


@dataclass
class Month:
    """The outputs of one month, where the tests read them."""

    name: str
    folder: Path
    chargeback: Chargeback | None = None
    """The run behind the files (the demo's months): the exporter's series are built from it."""
    ledger_export: dict[str, str] = field(default_factory=dict)
    """`chargeback ledger export --format X` of the month → its text (the demo's months, closed)."""
    work: Path | None = None
    """A scratch folder of the month (PDFs are printed there)."""
    query: Callable[[str], list[dict]] | None = None
    """PromQL on a real Prometheus that scraped the month's exporter series (the demo's months)."""
    _cache: dict = field(default_factory=dict)

    def cached(self, key: str, make: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


# ------------------------------------------------------------------ reading helpers


def money(text: str) -> Decimal:
    """A figure as the reports print it (1,234.56, +12.30, -4.00, −4.00)."""
    return Decimal(html.unescape(text).strip().replace(",", "").replace("−", "-"))


def cents(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:  # a BOM, if the CSV has one, is no column name
        return list(csv.DictReader(f))


def summed(pairs: Iterator[tuple[str, Decimal]]) -> Totals:
    totals: Totals = defaultdict(Decimal)
    for unit, amount in pairs:
        totals[unit] += amount
    return dict(totals)


def invoices(month: Month) -> dict[str, dict]:
    """Unit id → its invoice JSON: the reference every other output is checked against."""
    return month.cached(  # type: ignore[return-value]
        "invoices",
        lambda: {
            (doc := json.loads(path.read_text(encoding="utf-8")))["business_unit"]["id"]: doc
            for path in sorted((month.folder / "invoices").glob("*.json"))
        },
    )


def capability_parts(invoice: dict) -> Decimal:
    """What the invoice total holds besides its resources: its capability sections."""
    return sum(
        (
            money(invoice[key]["total"])
            for key in ("capabilities_consumed", "recovered_from_consumers")
            if key in invoice
        ),
        Decimal(0),
    )


def expected(month: Month, figure: Figure) -> Totals:
    result = {}
    for unit, invoice in invoices(month).items():
        if figure is Figure.TOTAL:
            result[unit] = money(invoice["total"])
        elif figure is Figure.RESOURCES:
            result[unit] = money(invoice["total"]) - capability_parts(invoice)
        elif figure is Figure.IDLE_HELD:
            result[unit] = money(invoice["idle"]["capacity_held"])
        else:
            result[unit] = money(invoice["idle"]["unit_pays"])
    return result


def display_names(month: Month) -> dict[str, str]:
    return {doc["business_unit"]["display_name"]: unit for unit, doc in invoices(month).items()}


def svg(page: str, chart_id: str) -> ET.Element | None:
    """The inline SVG chart `chart_id` of an HTML page, parsed (None: the page has no such chart)."""
    found = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', page, re.S)
    return ET.fromstring(found.group()) if found else None


SVG = "{http://www.w3.org/2000/svg}"
LABEL = re.compile(r"^(?P<name>.*): (?P<currency>[A-Z]{3}) (?P<amount>[-+−]?[\d,]+(?:\.\d+)?)(?: in the period)?$")


def labelled(root: ET.Element, kind: str) -> dict[str, Decimal]:
    """aria-label "<name>: CNY 1,234.56" of each group of class `kind` (a bar, a series) → its figure."""
    result = {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == kind:
            found = LABEL.match(group.get("aria-label", ""))
            assert found, group.get("aria-label")
            result[found["name"]] = money(found["amount"])
    return result


def figcaption_after(page: str, chart_id: str) -> str:
    found = re.search(rf'id="{chart_id}".*?</svg>\s*<figcaption>(.*?)</figcaption>', page, re.S)
    assert found, f"no caption under chart {chart_id}"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


LEFT_OUT = re.compile(r"(capabilities consumed|recovered from consumers \(credit\)) [A-Z]{3} ([-+][\d,]+\.\d+)")


# ------------------------------------------------------------------ one reader per output


def invoice_html(month: Month) -> Totals:
    """The "Total" line of each invoice page."""
    result = {}
    for unit in invoices(month):
        page = (month.folder / "invoices" / f"{unit}.html").read_text(encoding="utf-8")
        (total,) = re.findall(r'<p class="total">Total [A-Z]{3} ([^<]+)</p>', page)
        (foot,) = re.findall(r'<th scope="row" colspan="2">Total</th><td class="num">([^<]+)</td>', page)
        assert money(total) == money(foot), unit
        result[unit] = money(total)
    return result


def invoice_pdf(month: Month) -> Totals:
    """The "Total" line of each invoice printed to PDF (Chromium), read back with pdftotext."""
    result = {}
    for unit, text in pdf_texts(month).items():
        if unit != "finance-summary":
            (total,) = re.findall(r"^Total [A-Z]{3} ([\d,.-]+)$", text, re.M)
            result[unit] = money(total)
    return result


def pdf_texts(month: Month) -> dict[str, str]:
    def make() -> dict[str, str]:
        assert month.work is not None
        pages = [month.folder / "finance-summary.html", *sorted((month.folder / "invoices").glob("*.html"))]
        pairs = [(page, month.work / f"{page.stem}.pdf") for page in pages]
        print_pdfs(pairs)
        return {
            html_page.stem: subprocess.run(
                ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
            ).stdout
            for html_page, pdf in pairs
        }

    return month.cached("pdf", make)  # type: ignore[return-value]


def summary_pdf_total(month: Month) -> Totals:
    """The finance summary's PDF: its pool total (the table is too narrow to read per unit), under "pool"."""
    # The first "Pool total" row is the units table's (budget, actual, …); month over month has another.
    total = re.findall(r"^\s*Pool total\s+[\d,.]+\s+([\d,.-]+)", pdf_texts(month)["finance-summary"], re.M)[0]
    return {"pool": money(total)}


def summary_rows(month: Month) -> dict[str, list[Decimal | None]]:
    page = (month.folder / "finance-summary.html").read_text(encoding="utf-8")
    rows = {}
    for row in re.findall(r'<tr class="(?:business-unit|unallocated)">(.*?)</tr>', page, re.S):
        (unit,) = re.findall(r'href="invoices/([^"]+)\.html"', row)
        cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
        rows[unit] = [None if cell.strip() in ("—", "") or cell.endswith("%") else money(cell) for cell in cells]
    return rows


def summary_table(month: Month) -> Totals:
    """The finance summary's "Actual" column."""
    return {unit: cells[1] for unit, cells in summary_rows(month).items()}  # type: ignore[misc]


def summary_table_idle_pays(month: Month) -> Totals:
    """The finance summary's "Idle: units pay" column."""
    return {unit: cells[4] for unit, cells in summary_rows(month).items()}  # type: ignore[misc]


def summary_table_idle_held(month: Month) -> Totals:
    """The finance summary's "Idle: pool capacity held" column."""
    return {unit: cells[5] for unit, cells in summary_rows(month).items()}  # type: ignore[misc]


def summary_chart_parts(month: Month) -> Totals:
    """The cost-by-resource chart: the parts drawn in each unit's bar (data-value of every segment and
    credit), summed. Units with a zero total have no bar."""
    page = (month.folder / "finance-summary.html").read_text(encoding="utf-8")
    root = svg(page, "cost-by-resource")
    assert root is not None
    names, result = display_names(month), {}
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "bar":
            name = LABEL.match(group.get("aria-label", ""))["name"]  # type: ignore[index]
            parts = [money(rect.get("data-value", "")) for rect in group.iter(f"{SVG}rect")]
            result[names[name]] = sum(parts, Decimal(0))
    return result


def summary_chart_figures(month: Month) -> Totals:
    """The cost-by-resource chart: the figure written after each bar (its label)."""
    root = svg((month.folder / "finance-summary.html").read_text(encoding="utf-8"), "cost-by-resource")
    assert root is not None
    names = display_names(month)
    return {names[name]: amount for name, amount in labelled(root, "bar").items()}


def summary_daily_chart(month: Month) -> Totals:
    """The summary's daily chart: each unit's days, plus the capability figures its caption says are not
    in them (so: the invoice total)."""
    page = (month.folder / "finance-summary.html").read_text(encoding="utf-8")
    root = svg(page, "daily-cost")
    assert root is not None
    names = display_names(month)
    shown = labelled(root, "series")
    assert set(shown) <= set(names), f"series not one unit each (more units than lines?): {set(shown) - set(names)}"
    result = {names[name]: amount for name, amount in shown.items()}
    _, _, left_out = figcaption_after(page, "daily-cost").partition("Not spread over days: ")
    for part in left_out.split("; "):
        for name in names:
            if part.startswith(f"{name} ") and (found := LEFT_OUT.search(part)):
                result[names[name]] += money(found.group(2))
    return result


def invoice_daily_charts(month: Month) -> Totals:
    """Each invoice's daily chart: its days, plus what its caption says is not spread over days (so: the
    invoice total); the caption's figure for the days is checked against the days themselves."""
    result = {}
    for unit in invoices(month):
        page = (month.folder / "invoices" / f"{unit}.html").read_text(encoding="utf-8")
        root = svg(page, "daily-cost")
        if root is None:  # no day with a cost: the page says nothing about days
            result[unit] = Decimal(0)
            continue
        ((_, days),) = labelled(root, "series").items()
        caption = figcaption_after(page, "daily-cost")
        stated = re.search(r"add up to (?:the resources' total, [A-Z]{3} ([\d,]+\.\d+)|the total above)", caption)
        assert stated, caption
        if stated.group(1):
            assert money(stated.group(1)) == days, f"{unit}: the caption's resources' total is not the days' sum"
        result[unit] = days + sum((money(m.group(2)) for m in LEFT_OUT.finditer(caption)), Decimal(0))
    return result


def line_items_csv(month: Month) -> Totals:
    """line_items.csv: resource lines only (README: capability lines are in capability_lines.csv)."""
    rows = read_csv(month.folder / "line_items.csv")
    return summed((row["business_unit"], money(row["amount"])) for row in rows)


def capability_lines_csv(month: Month) -> Totals:
    """capability_lines.csv as it moves money: a charged line's amount is paid by its consumer unit and
    credited to its provider unit."""
    path = month.folder / "capability_lines.csv"
    if not path.exists():
        return {}
    result: Totals = defaultdict(Decimal)
    for row in read_csv(path):
        if row["charged"] == "true":
            result[row["consumer_unit"]] += money(row["amount"])
            result[row["provider_unit"]] -= money(row["amount"])
    return dict(result)


def line_and_capability_csvs(month: Month) -> Totals:
    """line_items.csv + capability_lines.csv: together, every line of each invoice."""
    lines, capabilities = line_items_csv(month), capability_lines_csv(month)
    return {unit: lines.get(unit, Decimal(0)) + capabilities.get(unit, Decimal(0)) for unit in {*lines, *capabilities}}


def focus_rows(rows: list[dict[str, str]], month: Month) -> Totals:
    """FOCUS rows: BilledCost per InvoiceId, named by the unit the invoice number belongs to."""
    units = {doc["invoice_number"]: unit for unit, doc in invoices(month).items()}
    return summed((units[row["InvoiceId"]], money(row["BilledCost"])) for row in rows)


def focus_csv(month: Month) -> Totals:
    return focus_rows(read_csv(month.folder / "focus.csv"), month)


def ledger_focus(month: Month) -> Totals:
    """`chargeback ledger export --format focus` of the closed month."""
    return focus_rows(list(csv.DictReader(io.StringIO(month.ledger_export["focus"]))), month)


def ledger_lines(month: Month) -> Totals:
    """`chargeback ledger export --format csv`: every document line of the closed month."""
    rows = csv.DictReader(io.StringIO(month.ledger_export["csv"]))
    return summed((row["business_unit"], money(row["amount"])) for row in rows)


def idle_csv_column(column: str) -> Callable[[Month], Totals]:
    """A money column of idle.csv summed per unit: `capacity_held` (each allocation counted once, on its
    quota row where the quota is flagged) and `unit_pays` are plain sums; `idle_value` is information on
    every row and is never summed (`test_idle_csv_idle_value_overlaps_so_it_is_not_summed`)."""

    def read(month: Month) -> Totals:
        return summed((row["business_unit"], money(row[column])) for row in read_csv(month.folder / "idle.csv"))

    read.__doc__ = f"idle.csv's {column} column summed per unit."
    return read


def usage_csv_quantities(month: Month) -> dict[tuple[str, str, str], Decimal]:
    """usage.csv's used quantity per (namespace, resource, tier): no money, checked against the line items'
    usage quantities (`test_usage_csv_holds_the_line_items_quantities`)."""
    rows = read_csv(month.folder / "usage.csv")
    return {(r["namespace"], r["resource"], r["tier"]): Decimal(r["used"] or 0) for r in rows}


# ------------------------------------------------------------------ exporter and Grafana (demo months)


class _Fixed:
    """The exporter's series of one run, as `chargeback serve` exposes them."""

    def __init__(self, chargeback: Chargeback) -> None:
        self.families = snapshot_of(chargeback).families

    def collect(self):
        yield from self.families


def scraped(month: Month) -> Callable[[str], list[dict]]:
    """A query function on a real Prometheus that scraped the month's exporter series over HTTP."""
    assert month.query is not None, f"{month.name}: no exporter was scraped for this month"
    return month.query


def per_unit(month: Month, expr: str) -> Totals:
    """A PromQL query (`$unit` = every unit) on the Prometheus that scraped the month's exporter, its
    answers summed per business_unit label and read as cents."""
    result = scraped(month)(expr.replace("$unit", ".*"))
    return summed((r["metric"]["business_unit"], cents(float(r["value"][1]))) for r in result)


def series(expr: str, doc: str) -> Callable[[Month], Totals]:
    """A reader of the exporter's series through `expr`."""

    def read(month: Month) -> Totals:
        return per_unit(month, expr)

    read.__doc__ = doc
    return read


EXPORTER = {
    "unit totals": series("resource_pool_business_unit_month_to_date_cost", "The invoice total series."),
    "per-line cost": series(
        "resource_pool_month_to_date_cost", "The per-line series summed per unit: resources only (its help says so)."
    ),
    "budget burn": series(
        "resource_pool_budget_burn_ratio * on (business_unit) group_left resource_pool_budget_monthly",
        "budget_burn_ratio × budget_monthly (units with a budget).",
    ),
    "forecast": series(
        "resource_pool_forecast_month_cost * scalar(resource_pool_month_to_date_hours)"
        " / scalar(resource_pool_month_hours)",
        "forecast_month_cost × hours so far / hours of the month (a whole month: the total).",
    ),
    "cost per north star": series(
        "resource_pool_cost_per_north_star_unit * on (business_unit) group_left sum by (business_unit) "
        "(resource_pool_north_star_volume)",
        "cost_per_north_star_unit × north_star_volume (units with a north star).",
    ),
    "idle capacity held": series(
        "resource_pool_idle_capacity_held", "Pool capacity held by idle allocations, counted once per allocation."
    ),
    "idle unit pays": series("resource_pool_idle_unit_pays", "What units pay for idle requests."),
}


def dashboard_panels() -> dict[str, list[str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in panels}


def panel(title: str, target: int) -> Callable[[Month], Totals]:
    """A Grafana panel's query (its `target`-th), evaluated on the Prometheus that scraped the exporter."""
    return series(dashboard_panels()[title][target], f"Grafana panel {title!r}, query {target + 1}")


IDLE_PANEL = "Idle allocations by namespace: pool capacity held and what the unit pays (month to date)"
PANEL_FIGURES: dict[str, tuple[Figure, ...] | None] = {
    "Month-to-date cost by business unit": (Figure.TOTAL,),
    "Top namespaces (month to date)": None,  # ten namespaces: `test_grafana_top_namespaces_are_the_line_items`
    IDLE_PANEL: (Figure.IDLE_HELD, Figure.IDLE_PAYS),
    # Ratios, levels and health, no money total: checked through the exporter series they read above.
    "Budget burn": None,
    "Forecast vs budget": None,
    "Forecast share of budget": None,
    "Cost by resource (month to date)": None,  # per resource across units; summed in the test below
    "Idle allocations (unused share)": None,
    "Exporter health": None,
    "Last-day cost vs its baseline (cost anomalies)": None,
    "Scrape coverage (last 24 h)": None,
    "Cost per unit of business (month to date)": None,
    "North-star volume (month to date)": None,
    "Undeclared capability callers (month to date)": None,
}
"""Every panel of the dashboard, and the invoice figure each of its queries' per-unit sum must equal (None: not a
money total per unit; `test_every_dashboard_panel_is_accounted_for` keeps this list whole)."""


@dataclass(frozen=True)
class Output:
    read: Callable[[Month], Totals]
    figure: Figure
    demo_only: bool = False
    """Needs the run itself (exporter, Prometheus, ledger): the golden month is files only."""
    units_with: str = ""
    """Only units with this invoice field show the figure (budget, north_star); others are left out."""


OUTPUTS: dict[str, Output] = {
    "invoice HTML": Output(invoice_html, Figure.TOTAL),
    "invoice PDF": Output(invoice_pdf, Figure.TOTAL),
    "invoice daily chart": Output(invoice_daily_charts, Figure.TOTAL),
    "finance summary table": Output(summary_table, Figure.TOTAL),
    "finance summary idle paid column": Output(summary_table_idle_pays, Figure.IDLE_PAYS),
    "finance summary idle held column": Output(summary_table_idle_held, Figure.IDLE_HELD),
    "finance summary chart figures": Output(summary_chart_figures, Figure.TOTAL),
    "finance summary chart parts": Output(summary_chart_parts, Figure.TOTAL),
    "finance summary daily chart": Output(summary_daily_chart, Figure.TOTAL),
    "line_items.csv": Output(line_items_csv, Figure.RESOURCES),
    "line_items.csv + capability_lines.csv": Output(line_and_capability_csvs, Figure.TOTAL),
    "idle.csv capacity_held": Output(idle_csv_column("capacity_held"), Figure.IDLE_HELD),
    "idle.csv unit_pays": Output(idle_csv_column("unit_pays"), Figure.IDLE_PAYS),
    "focus.csv": Output(focus_csv, Figure.TOTAL),
    "ledger export focus": Output(ledger_focus, Figure.TOTAL, demo_only=True),
    "ledger export csv": Output(ledger_lines, Figure.TOTAL, demo_only=True),
    "exporter unit totals": Output(EXPORTER["unit totals"], Figure.TOTAL, demo_only=True),
    "exporter per-line cost": Output(EXPORTER["per-line cost"], Figure.RESOURCES, demo_only=True),
    "exporter budget burn": Output(EXPORTER["budget burn"], Figure.TOTAL, demo_only=True, units_with="budget"),
    "exporter forecast": Output(EXPORTER["forecast"], Figure.TOTAL, demo_only=True),
    "exporter cost per north star": Output(
        EXPORTER["cost per north star"], Figure.TOTAL, demo_only=True, units_with="north_star"
    ),
    "exporter idle capacity held": Output(EXPORTER["idle capacity held"], Figure.IDLE_HELD, demo_only=True),
    "exporter idle unit pays": Output(EXPORTER["idle unit pays"], Figure.IDLE_PAYS, demo_only=True),
    **{
        f"Grafana: {title}" + (f" (query {target + 1})" if len(figures) > 1 else ""): Output(
            panel(title, target), figure, demo_only=True
        )
        for title, figures in PANEL_FIGURES.items()
        if figures is not None
        for target, figure in enumerate(figures)
    },
}
"""Each output a person reads, and the invoice figure it shows per unit."""


def mismatches(month: Month, output: Output) -> dict[str, tuple[Decimal | None, Decimal | None]]:
    """Unit → (the output's figure, the invoice's) wherever they differ. A unit with a zero figure may be
    absent from an output that has nothing to show for it (no bar, no row, no series)."""
    want = {
        unit: amount
        for unit, amount in expected(month, output.figure).items()
        if not output.units_with or invoices(month)[unit].get(output.units_with)
    }
    got = output.read(month)
    return {
        unit: (got.get(unit), want.get(unit))
        for unit in {*want, *got}
        if got.get(unit, Decimal(0)) != want.get(unit, Decimal(0))
    }


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Month]:
    """The demo run once into a tmp folder; both months closed into a SQLite ledger while its Prometheus
    still serves, and exported from it."""
    work = tmp_path_factory.mktemp("reconcile")
    out, ledger = work / "demo", work / "ledger.db"
    runner = CliRunner()

    def close_months(url: str) -> None:
        for period in DEMO_MONTHS:
            args = ["close", "--period", period.label, "--prometheus", url, "--catalog", str(CATALOG)]
            issued = ["--out", str(work / "issued" / period.label), "--ledger", str(ledger), "--allow-dirty-catalog"]
            closed = runner.invoke(chargeback_app, [*args, *issued])
            assert closed.exit_code == 0, closed.output

    result = run_demo(
        out, DEMO_MONTHS[-1], CATALOG, Console(file=io.StringIO(), width=120), keep_prometheus=close_months
    )
    assert result is not None
    months = {}
    for period in DEMO_MONTHS:
        exports = {}
        for fmt in ("focus", "csv"):
            args = ["ledger", "export", "--ledger", str(ledger), "--from", period.label, "--to", period.label]
            exported = runner.invoke(chargeback_app, [*args, "--format", fmt])
            assert exported.exit_code == 0, exported.output
            exports[fmt] = exported.stdout
        (work / period.label).mkdir()
        months[period.label] = Month(
            period.label, out / period.label, result.runs[period.label].chargeback, exports, work / period.label
        )
    return months


@pytest.fixture(scope="module")
def served(demo: dict[str, Month], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Month]]:
    """Each demo month's exporter series served over HTTP on a free loopback port and scraped by its own
    real Prometheus (one per month: the dashboard's sums must not mix months)."""
    servers, prometheuses = [], []
    try:
        for month in demo.values():
            assert month.chargeback is not None
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Fixed(month.chargeback))  # type: ignore[arg-type]
            port = free_port()
            servers.append(start_http_server(port, addr="127.0.0.1", registry=registry))
            data = tmp_path_factory.mktemp(f"scraper-{month.name}") / "tsdb"
            data.mkdir()
            prometheus = LocalPrometheus(data, scrape_targets=[f"127.0.0.1:{port}"])
            prometheus.start()
            prometheuses.append(prometheus)
            wait_for_series(prometheus.url, "resource_pool_month_hours")
            month.query = query_for(prometheus.url)
        yield demo
    finally:
        for prometheus in prometheuses:
            prometheus.stop()
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Month:
    return Month("golden 2026-10", GOLDEN, work=tmp_path_factory.mktemp("golden-pdf"))


MONTHS = ("golden 2026-10", *(period.label for period in DEMO_MONTHS))


@pytest.fixture
def month(request: pytest.FixtureRequest) -> Month:
    name = request.param
    if name.startswith("golden"):
        return request.getfixturevalue("golden")
    return request.getfixturevalue("served")[name]


# ------------------------------------------------------------------ the checks


CASES = [
    pytest.param(name, output, id=f"{name}-{output}")
    for name in MONTHS
    for output, spec in OUTPUTS.items()
    if not (spec.demo_only and name.startswith("golden"))
]


@pytest.mark.prometheus
@pytest.mark.parametrize(("month", "output"), CASES, indirect=["month"])
def test_output_ties_out_to_the_invoices(month: Month, output: str) -> None:
    """The output's figure per unit equals the invoice's (or the invoice's minus exactly what the output
    says it leaves out)."""
    spec = OUTPUTS[output]
    assert spec.read(month), f"{output} shows no unit at all"
    assert mismatches(month, spec) == {}


@pytest.mark.prometheus
@pytest.mark.parametrize("month", MONTHS, indirect=True)
def test_summary_pdf_pool_total_is_the_sum_of_the_invoices(month: Month) -> None:
    assert summary_pdf_total(month) == {"pool": sum(expected(month, Figure.TOTAL).values(), Decimal(0))}


@pytest.mark.prometheus
@pytest.mark.parametrize("month", MONTHS, indirect=True)
def test_usage_csv_holds_the_line_items_quantities(month: Month) -> None:
    """usage.csv has no money: its used quantity of each billed namespace and resource is the sum of the
    line items' usage quantities (lines split at a rate change, or a shared namespace's lines split between
    units, add up)."""
    lines: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for row in read_csv(month.folder / "line_items.csv"):
        lines[(row["namespace"], row["resource"], row["tier"])] += Decimal(row["usage_quantity"])
    usage = usage_csv_quantities(month)
    assert lines
    # A shared namespace's quantity is split between units, each part rounded to the nano unit: its parts
    # add up to within a nano unit per line.
    counts = Counter(
        (row["namespace"], row["resource"], row["tier"]) for row in read_csv(month.folder / "line_items.csv")
    )
    assert {key: abs(usage[key] - lines[key]) <= NANO * counts[key] for key in lines} == dict.fromkeys(lines, True)


@pytest.mark.prometheus
@pytest.mark.parametrize("month", [p.label for p in DEMO_MONTHS], indirect=True)
def test_grafana_top_namespaces_are_the_line_items(month: Month) -> None:
    """The top-namespaces table: the ten costliest (unit, namespace) pairs of line_items.csv, each at its
    line items' sum; the panel's description says it holds resources only."""
    (expr,) = dashboard_panels()["Top namespaces (month to date)"]
    shown = {
        (r["metric"]["business_unit"], r["metric"]["namespace"]): cents(float(r["value"][1]))
        for r in scraped(month)(expr.replace("$unit", ".*"))
    }
    lines = summed(
        (f"{row['business_unit']}/{row['namespace']}", money(row["amount"]))
        for row in read_csv(month.folder / "line_items.csv")
    )
    assert len(lines) > 10 and len(shown) == 10
    top = sorted(lines.items(), key=lambda item: -item[1])[:10]
    assert shown == {tuple(key.split("/")): amount for key, amount in top}


@pytest.mark.prometheus
@pytest.mark.parametrize("month", [p.label for p in DEMO_MONTHS], indirect=True)
def test_grafana_cost_by_resource_adds_up_to_the_resources(month: Month) -> None:
    """The pie of cost by resource (every unit): its slices add up to what every unit's resources cost."""
    (expr,) = dashboard_panels()["Cost by resource (month to date)"]
    slices = [cents(float(r["value"][1])) for r in scraped(month)(expr.replace("$unit", ".*"))]
    assert sum(slices, Decimal(0)) == sum(expected(month, Figure.RESOURCES).values(), Decimal(0))


def test_every_dashboard_panel_is_accounted_for() -> None:
    assert set(dashboard_panels()) == set(PANEL_FIGURES)


@pytest.mark.prometheus
def test_idle_csv_idle_value_overlaps_so_it_is_not_summed(served: dict[str, Month]) -> None:
    """idle.csv's `idle_value` stands on every flagged row, so an allocation flagged on quota and on requests
    shows it twice (the demo's October: Community Services' column sums to more than its invoice's capacity
    held); `capacity_held` counts the allocation once and ties."""
    month = served["2026-10"]
    plain = idle_csv_column("idle_value")(month)
    counted = expected(month, Figure.IDLE_HELD)
    assert plain["community-services"] > counted["community-services"]
    assert idle_csv_column("capacity_held")(month) == {unit: amount for unit, amount in counted.items() if amount}


# ------------------------------------------------------------------ each check can fail


def one_cent_more(text: str, pattern: str) -> str:
    """`text` with the money figure of `pattern`'s first match (its group 1) raised by one cent."""
    found = re.search(pattern, text)
    assert found, pattern
    figure = money(found.group(1)) + CENT
    written = f"{figure:,.2f}" if "," in found.group(1) else str(figure)
    return text[: found.start(1)] + written + text[found.end(1) :]


FILE_PERTURBATIONS = {
    "invoice HTML": ("invoices/data-insight.html", r'<p class="total">Total CNY ([\d,.]+)</p>'),
    "invoice daily chart": ("invoices/data-insight.html", r'<g class="series" aria-label="[^"]*: CNY ([\d,.]+) in'),
    "finance summary table": (
        "finance-summary.html",
        r'<td class="num">([\d,.]+)</td>\s*<td class="num[^"]*">[\d.]+ %',
    ),
    "finance summary idle paid column": (
        "finance-summary.html",
        r'<td class="num">([\d,.]+)</td>\s*<td class="num">[\d,.]+</td>\s*</tr>',
    ),
    "finance summary idle held column": (
        "finance-summary.html",
        r'<td class="num">[\d,.]+</td>\s*<td class="num">([\d,.]+)</td>\s*</tr>',
    ),
    "finance summary chart figures": ("finance-summary.html", r'<g class="bar" aria-label="[^"]*: CNY ([\d,.]+)"'),
    "finance summary chart parts": ("finance-summary.html", r'data-value="([\d.]+)"'),
    "finance summary daily chart": ("finance-summary.html", r'<g class="series" aria-label="[^"]*: CNY ([\d,.]+) in'),
    "line_items.csv": ("line_items.csv", r",([\d.]+),CNY,"),
    "line_items.csv + capability_lines.csv": ("line_items.csv", r",([\d.]+),CNY,"),
    "idle.csv capacity_held": ("idle.csv", r"\ncommunity-services,(?:[^,]*,){10}([\d.]+),"),
    "idle.csv unit_pays": ("idle.csv", r"\ncommunity-services,(?:[^,]*,){11}([\d.]+),"),
    "focus.csv": ("focus.csv", r"\n,,,,,([\d.]+),"),
}
"""Per file output of the golden month: a figure of one unit to raise by a cent."""


@pytest.mark.parametrize("output", FILE_PERTURBATIONS)
def test_a_figure_changed_in_an_output_file_is_caught(output: str, tmp_path: Path) -> None:
    folder = tmp_path / "month"
    shutil.copytree(GOLDEN, folder)
    assert mismatches(Month("golden", folder), OUTPUTS[output]) == {}
    path, pattern = FILE_PERTURBATIONS[output]
    target = folder / path
    target.write_text(one_cent_more(target.read_text(encoding="utf-8"), pattern), encoding="utf-8")
    with pytest.raises(AssertionError):
        assert mismatches(Month("golden", folder), OUTPUTS[output]) == {}


def test_every_file_output_of_the_golden_month_has_a_perturbation() -> None:
    pdf = {"invoice PDF"}  # printed from the invoice HTML: a changed HTML total is caught there
    assert set(FILE_PERTURBATIONS) | pdf == {name for name, spec in OUTPUTS.items() if not spec.demo_only}


@pytest.mark.prometheus
@pytest.mark.parametrize("output", [name for name, spec in OUTPUTS.items() if spec.demo_only or name == "invoice PDF"])
def test_every_other_output_is_compared_for_real(output: str, served: dict[str, Month]) -> None:
    """The outputs read from a run (ledger, exporter, Grafana, PDF) against invoices with one unit's figures
    a cent off: the check names that unit."""
    month = served["2026-10"]
    spec = OUTPUTS[output]
    unit = next(u for u, doc in invoices(month).items() if not spec.units_with or doc.get(spec.units_with))
    perturbed = json.loads(json.dumps(invoices(month)))
    doc = perturbed[unit]
    doc["total"] = str(money(doc["total"]) + CENT)
    for figure in ("capacity_held", "unit_pays"):
        doc["idle"][figure] = str(money(doc["idle"][figure]) + CENT)
    changed = Month(month.name, month.folder, month.chargeback, month.ledger_export, month.work, month.query)
    changed._cache.update(month._cache, invoices=perturbed)
    assert list(mismatches(changed, spec)) == [unit]
