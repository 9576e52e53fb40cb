"""`chargeback close` and `chargeback ledger list|show|export`: the month close finance signs.

Registered on the `chargeback` command line by cli.py. Exit status: 0 done (or nothing to do), 1 a closed
month's figures changed and nothing was issued, 2 bad input or an error (message, never a traceback).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pool_catalog.guard import guard
from pool_catalog.numbers import format_money

from .cli import (
    CatalogOption,
    ClusterLabelOption,
    ClusterOption,
    FocusVersionOption,
    MatchOption,
    ModeOption,
    PeriodOption,
    app,
    err,
    out,
)
from .collect.prometheus import PrometheusSettings
from .connection import connection_options
from .errors import LedgerError, OutputError
from .ledger.close import CloseResult, close_month, default_ledger
from .ledger.datasets import dataset_files
from .ledger.documents import Difference, UnitState, chargeback_lines, differences, month_in_force
from .ledger.reading import ClosedMonthsCollector
from .ledger.schema import LINE_FIELDS
from .ledger.store import Issue, Ledger, ledger_url
from .outputs.csv_tables import BOM
from .outputs.focus import FOCUS_VERSION, files_in_version, relayout
from .outputs.writer import write_file, write_new_files
from .period import Period
from .rate.result import Chargeback

LedgerOption = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Ledger of issued months: a SQLite file or postgresql://user@host/db "
        "(default: ledger.db in the reports' parent folder).",
        envvar="CHARGEBACK_LEDGER",
    ),
]
RequiredLedgerOption = Annotated[
    str,
    typer.Option("--ledger", help="Ledger: a SQLite file or postgresql://user@host/db.", envvar="CHARGEBACK_LEDGER"),
]
FromOption = Annotated[str | None, typer.Option("--from", help="First billing period, YYYY-MM.")]
ToOption = Annotated[str | None, typer.Option("--to", help="Last billing period, YYYY-MM.")]

ledger_app = typer.Typer(help="Issued months and corrections, as finance signed them.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


def open_existing(target: str) -> Ledger:
    """A ledger that must already exist (reading never creates an empty SQLite file)."""
    url = ledger_url(target)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise LedgerError(f"no ledger at {url.database}: close a month first, or give --ledger the ledger's path")
    return Ledger(target)


def closed_months(target: str) -> ClosedMonthsCollector:
    """The exporter's collector of closed months, on a ledger that must exist."""
    return ClosedMonthsCollector(open_existing(target))


def closed_issues(ledger: str | None, out_dir: Path, period: str) -> tuple[str, list[Issue]] | None:
    """The issues of `period` when a ledger exists (explicit, or ledger.db beside the reports) and holds it."""
    target: str | Path | None = ledger
    if target is None:
        target = default_ledger(out_dir)
        if not target.is_file():
            return None
    label = Period.parse(period).label
    with open_existing(str(target)) as book:
        issues = book.issues(period=label)
        return (book.name, issues) if issues else None


def print_differences(changes: Sequence[Difference], in_force: dict[str, UnitState], currency: str) -> None:
    units = sorted({c.business_unit for c in changes})
    for unit in units:
        state = in_force.get(unit)
        mine = [c for c in changes if c.business_unit == unit]
        change = sum((c.change for c in mine), Decimal(0))
        invoice = state.invoice if state and state.invoice else "no invoice"
        out().print(
            f"{unit} ({invoice}): {currency} {format_money(change, currency, sign=True)}", soft_wrap=True, markup=False
        )
        for difference in mine:
            out().print(f"  {difference.describe()}", soft_wrap=True, markup=False)


def print_below_threshold(result: CloseResult, currency: str) -> None:
    """The units whose change is below rates.yaml corrections.materiality: no note for them."""
    if not result.below:
        return
    out().print(
        f"below the materiality threshold of {currency} {result.materiality} (rates.yaml corrections.materiality), "
        "no note for:",
        soft_wrap=True,
        markup=False,
    )
    for unit in result.below:
        lines = f"{unit.lines} line{'s' if unit.lines > 1 else ''}"
        out().print(f"  {unit.business_unit}: {currency} {unit.change:+f} ({lines})", soft_wrap=True, markup=False)


def issued_pdfs(ledger_name: str, issues: Sequence[Issue], folder: Path) -> str:
    """What `invoice --pdf` says on a closed month: its issued PDFs are in `folder` as issued, or the command
    that writes them from the ledger (a closed month's documents are never printed anew)."""
    pdfs = {name: content for issue in issues for name, content in issue.files.items() if isinstance(content, bytes)}
    period = issues[0].period
    if not pdfs:
        return (
            f"PDFs: {period} was closed without PDFs (before close printed them), so none were issued; the issued "
            "HTML documents are in the reports, or from chargeback ledger export --format files"
        )
    missing = sorted(name for name, content in pdfs.items() if _read_bytes(folder / name) != content)
    if not missing:
        return f"PDFs: the {len(pdfs)} PDFs issued for {period} are in {folder} as issued (written by close)"
    billed = sorted(issue.billing_period for issue in issues)
    return (
        f"PDFs: {len(missing)} of the {len(pdfs)} PDFs issued for {period} are not in {folder} as issued "
        f"({', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}); write them from the ledger with "
        f"chargeback ledger export --ledger {ledger_name} --from {billed[0]} --to {billed[-1]} --format files "
        f"--out DIR (into DIR/{period}/)"
    )


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def compare_closed(
    chargeback: Chargeback, ledger_name: str, issues: list[Issue], pdf_folder: Path | None = None
) -> None:
    """`chargeback invoice` on a closed month: recompute, compare with what is in force, print; exit 1 if it differs.
    `pdf_folder` (invoice --pdf): also say where the issued PDFs are, or how to write them."""
    in_force = month_in_force(issues)
    changes = differences(in_force, chargeback_lines(chargeback))
    original = next(i for i in issues if i.sequence == 0)
    corrections = len(issues) - 1
    where = (
        f"{chargeback.period.label} is closed in ledger {ledger_name} (issued {original.issued_at} by "
        f"{original.issued_by}, fingerprint {original.content_hash[:12]}"
        + (f", {corrections} correction{'s' if corrections > 1 else ''}" if corrections else "")
        + "); its reports were not rewritten"
    )
    out().print(where, soft_wrap=True, markup=False)
    if pdf_folder is not None:
        out().print(issued_pdfs(ledger_name, issues, pdf_folder), soft_wrap=True, markup=False)
    for unit, state in in_force.items():
        if len(state.chain) > 1:  # a corrected month: its documents in order, then what is in force
            documents = " → ".join(
                f"{number} ({kind.replace('_', ' ')} {format_money(total, state.currency)})"
                for number, kind, total, _ in state.chain
            )
            in_force_total = format_money(state.total, state.currency)
            out().print(f"  {unit}: {documents} → in force {in_force_total}", soft_wrap=True, markup=False)
    if not changes:
        out().print("recomputed figures: identical", markup=False)
        return
    out().print(f"recomputed figures: {len(changes)} lines differ", markup=False)
    print_differences(changes, in_force, chargeback.currency)
    out().print(
        f"issue correction notes with: chargeback close --period {chargeback.period.label} --correct …", markup=False
    )
    raise typer.Exit(1)


@app.command()
@guard("chargeback")
@connection_options
def close(
    period: PeriodOption,
    settings: PrometheusSettings,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory for the reports of the period.")],
    ledger: LedgerOption = None,
    correct: Annotated[
        bool,
        typer.Option(
            "--correct",
            help="The month is closed and its figures changed: issue credit/debit notes for the difference.",
        ),
    ] = False,
    catalog: CatalogOption = Path("catalog"),
    cluster: ClusterOption = None,
    cluster_label: ClusterLabelOption = None,
    match: MatchOption = None,
    billing_mode: ModeOption = None,
    previous: Annotated[
        Path | None, typer.Option("--previous", help="Output directory of the previous period (month over month).")
    ] = None,
    allow_dirty_catalog: Annotated[
        bool,
        typer.Option(
            "--allow-dirty-catalog",
            help="Close even though the catalog has uncommitted changes (the ledger records the checkout as dirty).",
        ),
    ] = False,
    focus_version: FocusVersionOption = FOCUS_VERSION,
    accept_coverage_loss: Annotated[
        bool,
        typer.Option(
            "--accept-coverage-loss",
            help="With --correct: issue the notes even though the recomputation covers fewer namespace-hours than "
            "the month was issued with (data Prometheus lost would become credit notes).",
        ),
    ] = False,
) -> None:
    """Issue a month into the ledger (and write its reports); re-run: compare; --correct: issue corrections."""
    result: CloseResult = close_month(
        period,
        catalog,
        settings,
        out_dir,
        ledger,
        correct=correct,
        cluster=cluster,
        cluster_label=cluster_label,
        matchers=match or [],
        billing_mode=billing_mode,
        previous=previous,
        focus_version=focus_version,
        allow_dirty_catalog=allow_dirty_catalog,
        accept_coverage_loss=accept_coverage_loss,
    )
    for warning in result.warnings:
        err().print(f"[yellow]warning[/yellow] {warning}", soft_wrap=True, markup=True, highlight=False)
    if result.outcome == "identical":
        out().print(
            f"{result.period} is already closed in ledger {result.ledger} with these figures: nothing issued",
            soft_wrap=True,
            markup=False,
        )
        return
    if result.outcome == "differs":
        currency = next(iter(result.in_force.values())).currency if result.in_force else ""
        out().print(
            f"{result.period} is closed in ledger {result.ledger} and its figures changed ({len(result.differences)} "
            "lines); nothing issued:",
            soft_wrap=True,
            markup=False,
        )
        print_differences(result.differences, result.in_force, currency)
        print_below_threshold(result, currency)
        out().print("issue correction notes for the difference with --correct", markup=False)
        raise typer.Exit(1)
    if result.outcome == "below_threshold":
        print_below_threshold(result, next(iter(result.in_force.values())).currency)
        out().print(
            f"{result.period}: no correction note issued; the decision {'is' if result.issue else 'was already'} "
            f"recorded in ledger {result.ledger} as #{result.recorded}",
            soft_wrap=True,
            markup=False,
        )
        return
    issue = result.issue
    assert issue is not None
    title = f"{result.period} issued" if result.outcome == "issued" else f"{result.period} correction {issue.sequence}"
    table = Table(title=f"{title} (fingerprint {issue.content_hash[:12]})")
    for column in ("Document", "Kind", "Business unit", "References", "Total"):
        table.add_column(column, justify="right" if column == "Total" else "left")
    for document in issue.documents:
        table.add_row(
            document.number,
            document.kind.replace("_", " "),
            document.business_unit,
            document.reference or "",
            f"{document.currency} {document.total}",
        )
    out().print(table)
    if issue.documents:
        print_below_threshold(result, issue.documents[0].currency)
    out().print(f"ledger {result.ledger}; wrote {len(result.written)} files to {out_dir}", soft_wrap=True)


# ------------------------------------------------------------------ ledger list | show | export


def _range(first: str | None, last: str | None) -> tuple[str | None, str | None]:
    first = Period.parse(first).label if first else None
    last = Period.parse(last).label if last else None
    if first and last and first > last:
        raise LedgerError(f"--from {first} is after --to {last}: swap them")
    return first, last


def _total(issue: Issue) -> str:
    if not issue.documents:
        return ""
    total = sum((Decimal(d.total) for d in issue.documents), Decimal(0))
    return f"{issue.documents[0].currency} {total:f}"


@ledger_app.command("list")
@guard("chargeback")
def list_issues(ledger: RequiredLedgerOption, first: FromOption = None, last: ToOption = None) -> None:
    """Every issued month and correction, in issue order."""

    def load() -> list[Issue]:
        start, end = _range(first, last)
        with open_existing(ledger) as book:
            return book.issues(billing_from=start, billing_to=end)

    issues = load()
    if not issues:
        out().print("nothing issued in that range", markup=False)
        return
    table = Table(title="Ledger")
    for column in ("Period", "#", "Kind", "Billed in", "Documents", "Total", "Issued (UTC)", "By", "Fingerprint"):
        table.add_column(column, justify="right" if column in ("#", "Documents", "Total") else "left")
    for issue in issues:
        table.add_row(
            issue.period,
            str(issue.sequence),
            issue.kind,
            issue.billing_period,
            str(len(issue.documents)),
            _total(issue),
            issue.issued_at,
            issue.issued_by,
            issue.content_hash[:12],
        )
    out().print(table)


@ledger_app.command("show")
@guard("chargeback")
def show(ledger: RequiredLedgerOption, period: PeriodOption) -> None:
    """A closed month: its documents per unit (invoice, then corrections), what is in force, and fingerprints."""

    def load() -> list[Issue]:
        with open_existing(ledger) as book:
            issues = book.issues(period=Period.parse(period).label)
        if not issues:
            raise LedgerError(
                f"{Period.parse(period).label} is not closed in ledger {ledger}: see chargeback ledger list"
            )
        return issues

    issues = load()
    for issue in issues:
        fp = issue.fingerprint
        git = fp["catalog"]["git"]
        out().print(
            f"{issue.period} #{issue.sequence} {issue.kind}, billed in {issue.billing_period}, "
            f"issued {issue.issued_at} by {issue.issued_by}\n  content sha256 {issue.content_hash}"
            f"\n  catalog {fp['catalog']['sha256']}"
            + (f" (git {git['commit']}{', dirty' if git['dirty'] else ''})" if git else " (not under version control)")
            + f"\n  rate card {fp['rate_card']['sha256']} versions {', '.join(fp['rate_card']['versions'])}"
            + f"\n  prometheus {fp['prometheus']['url']} {fp['prometheus']['version'] or '(version unknown)'} "
            f"queries {fp['prometheus']['queries_sha256']}\n  tool {fp['tool_version']}"
            + "".join(
                f"\n  below materiality {fp['corrections']['materiality']}, no note: {b['business_unit']} {b['change']}"
                for b in fp.get("corrections", {}).get("below", [])
            ),
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    in_force = month_in_force(issues)
    table = Table(title=f"{issues[0].period}: documents per business unit")
    for column in ("Business unit", "Document", "Kind", "Amount", "Issued (UTC)"):
        table.add_column(column, justify="right" if column == "Amount" else "left")
    for unit, state in in_force.items():
        for number, kind, total, issued_at in state.chain:
            table.add_row(unit, number, kind.replace("_", " "), format_money(total, state.currency), issued_at)
        table.add_row(unit, "in force", "", format_money(state.total, state.currency), "", end_section=True)
    out().print(table)


def _focus_file(issue: Issue) -> str:
    name = "focus.csv" if issue.kind == "original" else f"corrections/C{issue.sequence}/focus.csv"
    content = issue.files.get(name)
    if not isinstance(content, str):
        raise LedgerError(f"{issue.period} #{issue.sequence} has no {name} in the ledger")
    return content


def _focus(issues: Sequence[Issue], version: str = FOCUS_VERSION) -> str:
    """The issued FOCUS rows in FOCUS `version` (a month issued in 1.3 is converted like one in 1.4): one header,
    then each issue's rows in issue order."""
    header, bodies = "", []
    for issue in issues:
        try:
            content = relayout(_focus_file(issue), version)
        except ValueError as e:
            raise LedgerError(
                f"{issue.period} #{issue.sequence}: its focus.csv is {e}; export it with the chargeback version that "
                "issued it"
            ) from None
        header, _, body = content.partition("\n")
        bodies.append(body)
    return header + "\n" + "".join(bodies)


def _lines_csv(issues: Sequence[Issue]) -> str:
    """Document lines for a spreadsheet: with a byte-order mark when the newest line_items.csv of the range was
    issued with one (rates.yaml csv_bom then), and by default when the range holds none (corrections only)."""
    issued = [i.files["line_items.csv"] for i in issues if "line_items.csv" in i.files]
    columns = ("period", "billing_period", "document", "kind", "reference", "business_unit", *LINE_FIELDS, "currency")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for issue in issues:
        for document in issue.documents:
            for line in document.lines:
                writer.writerow(
                    {
                        "period": issue.period,
                        "billing_period": issue.billing_period,
                        "document": document.number,
                        "kind": document.kind,
                        "reference": document.reference or "",
                        "business_unit": document.business_unit,
                        **line,
                        "currency": document.currency,
                    }
                )
    return (BOM if not issued or issued[-1].startswith(BOM) else "") + buffer.getvalue()


def _json(issues: Sequence[Issue]) -> str:
    value = [
        {
            "period": issue.period,
            "sequence": issue.sequence,
            "kind": issue.kind,
            "billing_period": issue.billing_period,
            "content_hash": issue.content_hash,
            "issued_at": issue.issued_at,
            "issued_by": issue.issued_by,
            "fingerprint": issue.fingerprint,
            "documents": [json.loads(d.content) for d in issue.documents],
        }
        for issue in issues
    ]
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


EXPORTS = {"focus": _focus, "csv": _lines_csv, "json": _json}


@ledger_app.command("export")
@guard("chargeback")
def export(
    ledger: RequiredLedgerOption,
    first: FromOption = None,
    last: ToOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="focus (the issued FOCUS rows), csv (document lines), json, or files (every issued report, "
            "into the folder --out, one subfolder per period).",
        ),
    ] = "focus",
    focus_version: FocusVersionOption = FOCUS_VERSION,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: standard output); a folder for files.")
    ] = None,
) -> None:
    """Issued months and corrections of billing periods [--from, --to], exactly as issued."""

    def load() -> list[Issue]:
        if fmt not in (*EXPORTS, "files"):
            raise LedgerError(f"--format {fmt!r}: choose focus, csv, json or files")
        if fmt == "files" and out_file is None:
            raise LedgerError("--format files writes report folders: give --out DIR")
        start, end = _range(first, last)
        with open_existing(ledger) as book:
            issues = book.issues(billing_from=start, billing_to=end)
            known = book.issues() if fmt == "files" else issues
        if not issues:
            raise LedgerError(f"nothing issued in ledger {ledger} for billing periods {start or '…'} to {end or '…'}")
        return issues, known

    issues, known = load()
    if fmt == "files":
        assert out_file is not None
        written = write_issued_files(out_file, issues, focus_version, known)
        err().print(f"wrote {len(written)} files to {out_file}", markup=False)
        return
    content = _focus(issues, focus_version) if fmt == "focus" else EXPORTS[fmt](issues)
    if out_file is None:
        typer.echo(content, nl=False)
        return
    write_file(out_file, content)
    err().print(f"wrote {out_file}", markup=False)


def write_issued_files(
    folder: Path, issues: Sequence[Issue], focus_version: str = FOCUS_VERSION, known: Sequence[Issue] | None = None
) -> list[Path]:
    """The report files of each issue under folder/<period>/, as issued, PDFs included byte for byte (e.g. to
    restore a lost reports folder), focus.csv files in `focus_version`, and beside each the FOCUS Billing Period
    and Invoice Detail files its close wrote, derived again from `known` (the whole ledger's issues; default `issues`).
    Files that exist with other content are an error; nothing is overwritten."""
    files: dict[str, str | bytes] = {}
    for issue in issues:
        issued = files_in_version(issue.files, focus_version) | dataset_files(known or issues, issue)
        files |= {f"{issue.period}/{name}": content for name, content in issued.items()}
    clashes = sorted(
        str(folder / name)
        for name, content in files.items()
        if (folder / name).exists()
        and (folder / name).read_bytes() != (content if isinstance(content, bytes) else content.encode("utf-8"))
    )
    if clashes:
        raise OutputError(f"{', '.join(clashes[:3])} already exist with other content: give --out an empty folder")
    new = {name: content for name, content in files.items() if not (folder / name).exists()}
    return write_new_files(folder, new) if new else []
