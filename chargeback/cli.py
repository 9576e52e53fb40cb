"""`chargeback`: finance's command line — invoices, idle allocations.

Each command parses its flags, calls `run.run_period` and prints. The connection flags come from
`connection` (one declaration, from PrometheusSettings); errors (bad period, catalog, Prometheus, prices)
go through `pool_catalog.guard`: one clear message and exit status 2, never a traceback.
Everything printed is text, never Rich markup (names and Prometheus errors may contain brackets); tables
on a terminal fit it without cutting numbers, and off a terminal (a pipe, cron mail) are printed at their
full width, or as CSV or JSON with --format.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import generate_latest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pool_catalog import load_catalog
from pool_catalog.guard import guard
from pool_catalog.models import BillingMode
from pool_catalog.numbers import format_money, format_number, format_percent
from pool_catalog.pricing import round_money

from .collect.doctor import default_period, diagnose
from .collect.findings import ERROR, SEVERITIES, Finding, errors_of
from .collect.prometheus import PrometheusClient, PrometheusSettings
from .collect.promql import LabelMatcher
from .connection import connection_options
from .exporter import (
    ExporterSource,
    MonthToDateCollector,
    billed_period,
    parse_interval,
    parse_listen,
    parse_utc_time,
    registry_of,
    utc_now,
)
from .exporter import serve as serve_metrics
from .outputs.focus import FOCUS_VERSION, FocusVersion
from .outputs.report_set import run_lock
from .period import Period
from .rate.idle import REASONS
from .rate.invoices import idle_totals, text
from .run import PeriodRun, clusters_to_collect, run_period

app = typer.Typer(
    help="Charge business units for what their namespaces used, from Prometheus and the catalog.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


WIDE = 1000
"""Width of tables printed off a terminal: as wide as their content, nothing cut or wrapped."""


def out() -> Console:
    """Console for results; made per call so the terminal width (or COLUMNS) of this run applies.
    Off a terminal, lines are as long as their content."""
    terminal = sys.stdout.isatty()
    return Console(highlight=False, markup=False, emoji=False, width=None if terminal else WIDE)


def err() -> Console:
    return Console(stderr=True, highlight=False, markup=False, emoji=False)


def styled(label: str, style: str, message: str) -> Text:
    """`label` in `style`, then `message` as plain text (never parsed as markup)."""
    return Text.assemble((label, style), " ", message)


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        help="table (on a terminal fitted to it; piped or mailed, at full width), csv or json (for scripts).",
    ),
]


@dataclass(frozen=True)
class Figure:
    """A number cell: thousands separated in a table (the format of every report), machine text in CSV and JSON."""

    value: Decimal
    places: int | None = None
    """Decimal places shown (half-even); None: the value's own, e.g. an invoice amount as rounded."""
    unit: str = ""

    def shown(self, form: Format) -> str:
        if form is Format.TABLE:
            number = format_number(self.value, self.places)
        else:
            exact = self.value if self.places is None else self.value.quantize(Decimal(1).scaleb(-self.places))
            number = text(exact)
        return f"{number} {self.unit}" if self.unit else number


def figure(value: Decimal | float, places: int | None = None, unit: str = "") -> Figure:
    """A Figure of a Decimal or of a float column (through its shortest repr, never binary noise)."""
    return Figure(value if isinstance(value, Decimal) else Decimal(repr(float(value))), places, unit)


def print_table(columns: list[tuple[str, bool]], cells: list[list[str | Figure]], title: str, form: Format) -> None:
    """Rows under `columns` (name, right-aligned) as a table, CSV or JSON on stdout; numbers are never cut."""
    rows = [[cell.shown(form) if isinstance(cell, Figure) else cell for cell in row] for row in cells]
    if form is Format.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([name for name, _ in columns])
        writer.writerows(rows)
        return
    if form is Format.JSON:
        names = [name for name, _ in columns]
        json.dump([dict(zip(names, row, strict=True)) for row in rows], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    table = Table(title=title)
    for index, (name, right) in enumerate(columns):
        widest = max([len(row[index]) for row in rows] + [1])
        if right:  # numbers keep their full width: other columns wrap instead
            table.add_column(name, justify="right", no_wrap=True, min_width=widest)
        else:
            table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out().print(table)


PeriodOption = Annotated[
    str,
    typer.Option(
        "--period", "-p", help="Calendar month to bill, YYYY-MM, of pool.yaml's billing.time_zone (default UTC)."
    ),
]
CatalogOption = Annotated[Path, typer.Option("--catalog", "-c", help="Catalog directory.", envvar="POOL_CATALOG")]
ClusterOption = Annotated[
    str | None, typer.Option("--cluster", help="Bill only this pool.yaml cluster (default: every cluster).")
]
ClusterLabelOption = Annotated[
    str | None,
    typer.Option("--cluster-label", help="Series label naming the cluster when one Prometheus holds several."),
]
MatchOption = Annotated[
    list[str] | None,
    typer.Option("--match", help='Extra label matcher added to every query, e.g. env="prod" (repeatable).'),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log every Prometheus request (on stderr).")]
AllowIncompleteOption = Annotated[
    bool,
    typer.Option(
        "--allow-incomplete",
        help="Bill even when `chargeback doctor` finds errors in the data (no data, a month not over, a "
        "required series missing, a partial answer); the findings are printed on every affected invoice.",
    ),
]
FocusVersionOption = Annotated[
    FocusVersion,
    typer.Option(
        "--focus-version",
        help="FOCUS version of focus.csv: 1.4 (the default) or 1.3 for tools that still read it (adds the "
        "ProviderName and PublisherName columns 1.4 removed).",
    ),
]
ModeOption = Annotated[
    BillingMode | None,
    typer.Option("--billing-mode", help="Override rates.yaml: usage, request, or max of request and use per hour."),
]


def _run(
    period: str,
    catalog: Path,
    settings: PrometheusSettings,
    out_dir: Path | None,
    cluster: str | None,
    cluster_label: str | None,
    match: list[str] | None,
    billing_mode: BillingMode | None,
    reports: dict[str, Any] | None = None,
    allow_incomplete: bool = False,
) -> PeriodRun:
    """`run_period`, then the run's warnings and data findings on stderr (a refusal is a DataContractError the
    command's guard prints). `reports`: the report options of run_period (previous, pdf, focus_version)."""
    run = run_period(
        period,
        catalog,
        settings,
        out_dir,
        cluster=cluster,
        cluster_label=cluster_label,
        matchers=match or [],
        billing_mode=billing_mode,
        allow_incomplete=allow_incomplete,
        **(reports or {}),
    )
    for warning in run.warnings:
        err().print(styled("warning", "yellow", warning), soft_wrap=True)
    for finding in run.findings:
        if finding.on_invoice:
            colour = "red" if finding.severity == ERROR else "yellow"
            line = f"{finding.code} [{finding.cluster}]: {finding.message}\n  fix: {finding.fix}"
            err().print(styled(finding.severity, colour, line), soft_wrap=True)
    return run


class _Stderr(logging.StreamHandler):
    """A handler writing to the sys.stderr of the moment (a test runner swaps it between commands)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def _logging(verbose: bool, level: int = logging.WARNING) -> None:
    """chargeback's log on stderr: progress of long collections, every Prometheus request too with
    --verbose. httpx's own request lines stay off (they would repeat ours at INFO)."""
    logger = logging.getLogger("chargeback")
    if not any(isinstance(handler, _Stderr) for handler in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logging.getLogger("chargeback.progress").setLevel(logging.INFO)
    logging.getLogger("chargeback.collect.prometheus").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
@guard("chargeback")
@connection_options
def invoice(
    period: PeriodOption,
    settings: PrometheusSettings,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for the reports of the period.")],
    catalog: CatalogOption = Path("catalog"),
    cluster: ClusterOption = None,
    cluster_label: ClusterLabelOption = None,
    match: MatchOption = None,
    billing_mode: ModeOption = None,
    form: FormatOption = Format.TABLE,
    verbose: VerboseOption = False,
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            help="Output directory of the previous period, for month over month "
            "(default: the sibling named after that period when --out is named after this one, e.g. out/2026-09).",
        ),
    ] = None,
    pdf: Annotated[
        bool,
        typer.Option(
            "--pdf",
            help="Also print each HTML report to PDF with headless Chromium (Debian chromium). On a closed month: "
            "says whether the PDFs close issued are in --out, else how to write them from the ledger.",
        ),
    ] = False,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Ledger of closed months (default: ledger.db in the reports' parent folder, if there is one); a "
            "closed month is recomputed and compared with it, its reports are not rewritten.",
            envvar="CHARGEBACK_LEDGER",
        ),
    ] = None,
    allow_incomplete: AllowIncompleteOption = False,
    focus_version: FocusVersionOption = FOCUS_VERSION,
) -> None:
    """Bill a month: invoices per business unit, finance summary, usage/line items/idle/FOCUS CSVs."""
    _logging(verbose)
    closed = ledger_cli.closed_issues(ledger, out_dir, period)
    if closed is not None:
        run = _run(period, catalog, settings, None, cluster, cluster_label, match, billing_mode, None, allow_incomplete)
        ledger_cli.compare_closed(run.chargeback, *closed, pdf_folder=out_dir if pdf else None)
        return
    reports = {"previous": previous, "pdf": pdf, "focus_version": focus_version}
    with run_lock(out_dir):  # from the start: a second run on this --out is refused before it asks Prometheus
        run = _run(
            period, catalog, settings, out_dir, cluster, cluster_label, match, billing_mode, reports, allow_incomplete
        )
    chargeback = run.chargeback
    columns = [("Invoice", False), ("Business unit", False), (f"Total ({chargeback.currency})", True)]
    columns += [("Budget used", True), ("Coverage", False)]
    rows: list[list[str | Figure]] = []
    grand_total = Decimal(0)
    for document in chargeback.invoices:
        grand_total += document.total
        budget = document.budget
        used = format_percent(budget.used) if budget and budget.used is not None else "—"
        coverage = "complete" if document.coverage.complete else "incomplete"
        rows.append(
            [document.invoice_number, document.business_unit.display_name, Figure(document.total), used, coverage]
        )
    rows.append(["", "Pool total", Figure(round_money(grand_total, chargeback.currency)), "", ""])
    title = f"Chargeback {chargeback.period.display} ({chargeback.billing_mode.value} billing)"
    print_table(columns, rows, title, form)
    (err() if form is not Format.TABLE else out()).print(f"wrote {len(run.written)} files to {out_dir}", soft_wrap=True)


@app.command()
@guard("chargeback")
@connection_options
def idle(
    period: PeriodOption,
    settings: PrometheusSettings,
    catalog: CatalogOption = Path("catalog"),
    cluster: ClusterOption = None,
    cluster_label: ClusterLabelOption = None,
    match: MatchOption = None,
    allow_incomplete: AllowIncompleteOption = False,
    form: FormatOption = Format.TABLE,
    verbose: VerboseOption = False,
) -> None:
    """Allocations used below rates.yaml's idle threshold, what they cost, and a right-size."""
    _logging(verbose)
    run = _run(period, catalog, settings, None, cluster, cluster_label, match, None, None, allow_incomplete)
    chargeback = run.chargeback
    frame = chargeback.idle
    policy = chargeback.catalog.rates.idle
    if frame.empty and form is Format.TABLE:
        out().print(
            f"no idle allocations in {chargeback.period}: everything held ≥ {policy.min_hours} h "
            f"was used ≥ {format_percent(policy.utilization_threshold, 0)} on average",
            soft_wrap=True,
        )
        return
    cur = chargeback.currency
    columns = [("Unit", False), ("Namespace", False), ("Resource", False), ("Basis", False)]
    for column in ("Allocated", "Used avg", "Peak use", "Util.", f"Capacity held ({cur})", f"You pay ({cur})"):
        columns.append((column, True))
    columns += [("Recommended", True), ("Advice basis", False), ("Why", False)]
    rows: list[list[str | Figure]] = []
    for row in frame.to_dict("records"):
        resource = f"{row['resource']} ({row['tier']})" if row["tier"] else row["resource"]
        recommended = row["recommended_allocation"]
        rows.append(
            [
                row["business_unit"],
                f"{row['namespace']} (claim {row['pvc']})" if row["pvc"] else row["namespace"],
                resource,
                row["basis"],
                figure(row["allocated"], 2, row["unit"]),
                figure(row["used_avg"], 2),
                figure(row["used_peak"], 2),
                format_percent(row["utilization"]),
                figure(row["capacity_held"]),
                figure(row["unit_pays"]),
                "—" if recommended is None else figure(recommended, None, row["unit"]),
                row["advice_basis"],
                REASONS[row["reason"]],
            ]
        )
    title = (
        f"Idle allocations {chargeback.period.display} (threshold {format_percent(policy.utilization_threshold, 0)})"
    )
    print_table(columns, rows, title, form)
    if form is Format.TABLE:
        unit_pays, capacity = idle_totals(frame, cur)
        out().print(
            f"idle allocations hold pool capacity worth {cur} {format_money(capacity, cur)} at the rate card this "
            f"period (each allocation once: its quota, else its requests); the units pay {cur} "
            f"{format_money(unit_pays, cur)} of it "
            f"({chargeback.billing_mode.value} billing)",
            soft_wrap=True,
        )


@app.command()
@guard("chargeback")
@connection_options
def doctor(
    settings: PrometheusSettings,
    catalog: CatalogOption = Path("catalog"),
    period: Annotated[
        str | None, typer.Option("--period", "-p", help="Month to check, YYYY-MM (default: the last complete month).")
    ] = None,
    cluster: ClusterOption = None,
    cluster_label: ClusterLabelOption = None,
    match: MatchOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON (for scripts).")] = False,
) -> None:
    """Check the metric contract before billing: which series exist, duplicates, silent nodes, NaN, retention …

    Exit status 1 when any finding is an error (`chargeback invoice` would refuse), 0 otherwise."""
    now = dt.datetime.now(dt.UTC)
    matchers = [LabelMatcher.parse(m) for m in match or ()]
    loaded = load_catalog(catalog)
    zone = loaded.pool.billing.time_zone
    month = Period.parse(period, zone) if period else default_period(now, zone)

    def check() -> tuple[list[str], list[Finding]]:
        clusters = clusters_to_collect(loaded, cluster, cluster_label)
        with PrometheusClient(settings) as client:
            return clusters, diagnose(client, loaded, month, clusters, cluster_label, matchers, now)

    clusters, findings = check()
    if as_json:
        document = {
            "period": month.label,
            "clusters": clusters,
            "errors": len(errors_of(findings)),
            "findings": [f.as_dict() for f in findings],
        }
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        _print_findings(month, clusters, findings)
    if errors_of(findings):
        raise typer.Exit(1)


def _print_findings(month: Period, clusters: list[str], findings: list[Finding]) -> None:
    console = out()
    colours = {"error": "red", "warning": "yellow", "info": "cyan"}
    for name in clusters:
        own = [f for f in findings if f.cluster == name]
        # The console prints no markup: names, messages and fixes (e.g. `consumes: [x]`) appear as written.
        console.print(Text.assemble((f"cluster {name}", "bold"), f" — {month.label}"), soft_wrap=True)
        if not own:
            console.print("  no findings: the metric contract holds", soft_wrap=True)
        for severity in SEVERITIES:
            of_severity = [f for f in own if f.severity == severity]
            if of_severity:
                console.print(Text.assemble("  ", (severity, colours[severity]), f" ({len(of_severity)})"))
            for finding in of_severity:
                console.print(f"    {finding.code}: {finding.message}", soft_wrap=True)
                console.print(f"      fix: {finding.fix}", soft_wrap=True)
    counts = ", ".join(f"{sum(f.severity == s for f in findings)} {s}" for s in SEVERITIES)
    verdict = (
        "chargeback invoice would refuse this period (exit 1); fix the errors or bill with --allow-incomplete"
        if errors_of(findings)
        else "chargeback invoice can bill this period"
    )
    console.print(f"{len(findings)} finding(s): {counts} — {verdict}", soft_wrap=True)


@app.command()
@guard("chargeback")
@connection_options
def serve(
    settings: PrometheusSettings,
    catalog: CatalogOption = Path("catalog"),
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT serving /metrics.")] = "127.0.0.1:9464",
    interval: Annotated[
        str, typer.Option("--interval", help="Time between refreshes of the month so far: 30s, 15m, 1h.")
    ] = "15m",
    once: Annotated[
        bool, typer.Option("--once", help="Refresh once, print the metrics to stdout and exit (2 if it failed).")
    ] = False,
    cluster: ClusterOption = None,
    cluster_label: ClusterLabelOption = None,
    match: MatchOption = None,
    billing_mode: ModeOption = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="Also export the closed months of this ledger (SQLite file or postgresql:// URL): totals in force "
            "per unit and month.",
            envvar="CHARGEBACK_LEDGER",
        ),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            "-p",
            help="Export this month, YYYY-MM, instead of the current one: whole once it has ended (its figures "
            "are its invoice's), else so far. E.g. the demo's 2026-10.",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Bill the month to date as at this UTC time instead of now, e.g. 2026-10-16T00:00:00Z (replays "
            "a past month's live view, such as the demo's).",
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Export month-to-date cost, budget burn, forecast and idle allocations for Prometheus to scrape."""
    month = Period.parse(period) if period else None
    fixed = parse_utc_time(at, "--at") if at else None
    # Checked now, not at the first refresh: a month that has not begun would export nothing, silently.
    billed_period(fixed or dt.datetime.now(dt.UTC), month)
    closed = [ledger_cli.closed_months(ledger)] if ledger else []
    seconds = parse_interval(interval)
    parse_listen(listen)
    _logging(verbose, logging.INFO)
    # A refresh may not outlive its interval: past it, it is a failure the refresh-failing alert sees.
    chosen = settings.deadline if "deadline" in settings.model_fields_set and settings.deadline else seconds
    settings = settings.model_copy(update={"deadline": min(chosen, seconds)})
    matchers = tuple(LabelMatcher.parse(m) for m in match or ())
    source = ExporterSource(catalog, settings, cluster, cluster_label, matchers, billing_mode)
    clock = (lambda: fixed) if fixed is not None else utc_now
    collector = MonthToDateCollector(source, clock, interval=None if once else seconds, month=month)
    if once:
        ok = collector.refresh()
        typer.echo(generate_latest(registry_of(collector, *closed)).decode(), nl=False)
        if not ok:
            raise typer.Exit(2)
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve_metrics(collector, listen, seconds, stop, closed)


# `close` and `ledger …` live in their own module and register themselves on `app`.
from . import ledger_cli  # noqa: E402


def main() -> None:
    app()


if __name__ == "__main__":
    main()
