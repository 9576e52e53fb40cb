"""Month close: issue a month into the ledger, compare a recomputation with it, or correct it.

`close_month` holds the ledger's close lock from before it reads the ledger until it has appended
what it issues, so two closes never both issue a month; everything it issues is one transaction,
and report files are written only after that transaction committed (staged, then moved into place).
A closed month is never rewritten: a recomputation that differs is issued as correction notes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pool_catalog import Catalog, load_catalog
from pool_catalog.models import BillingMode

from ..collect.prometheus import PrometheusClient, PrometheusSettings
from ..collect.promql import LabelMatcher
from ..errors import LedgerError, OutputError
from ..outputs.csv_tables import csv_text
from ..outputs.focus import COLUMNS as FOCUS_COLUMNS
from ..outputs.focus import correction_rows, focus_rows
from ..outputs.history import PreviousPeriod
from ..outputs.html import html_environment, render
from ..outputs.reports import previous_period, report_files
from ..outputs.writer import write_new_files, write_reports
from ..period import Period, iso_utc
from ..rate.invoices import UNALLOCATED_NAME, text
from ..run import PeriodRun, run_period
from .documents import (
    Difference,
    UnitState,
    chargeback_lines,
    correction_lines,
    differences,
    invoice_documents,
    month_in_force,
    note_number,
    note_total,
)
from .fingerprint import build_fingerprint, issuer_identity
from .reading import previous_from_ledger
from .store import Document, Issue, Ledger, content_hash


@dataclass(frozen=True)
class CloseResult:
    """What a close did: `issued` (the original), `corrected`, `identical` (nothing to do) or `differs`
    (figures changed; nothing issued without --correct)."""

    outcome: str
    period: str
    ledger: str
    issue: Issue | None = None
    differences: list[Difference] = field(default_factory=list)
    in_force: dict[str, UnitState] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_ledger(out: Path) -> Path:
    """`ledger.db` in the reports' parent folder: reports/2026-10 → reports/ledger.db."""
    return Path(out).resolve().parent / "ledger.db"


def issue_summary(issue: Issue) -> dict[str, Any]:
    """What an issued document prints about its issue: short hash, inputs, who and when."""
    fingerprint = issue.fingerprint
    return {
        "period": issue.period,
        "sequence": issue.sequence,
        "kind": issue.kind,
        "billing_period": issue.billing_period,
        "content_hash": issue.content_hash,
        "short_hash": issue.content_hash[:12],
        "issued_at": issue.issued_at,
        "issued_by": issue.issued_by,
        "fingerprint": fingerprint,
    }


def _check_ended(period: Period, now: dt.datetime) -> None:
    if period.end > now:
        raise LedgerError(
            f"{period.label} ends at {iso_utc(period.end)}, after now ({iso_utc(now)}): only a month that is over "
            "can be closed; bill it so far with chargeback invoice"
        )


def close_month(
    period: str | Period,
    catalog: Catalog | Path | str,
    prometheus: PrometheusSettings | str,
    out: Path | str,
    ledger: str | Path | None = None,
    *,
    correct: bool = False,
    cluster: str | None = None,
    cluster_label: str | None = None,
    matchers: Sequence[LabelMatcher | str] = (),
    billing_mode: str | BillingMode | None = None,
    previous: Path | None = None,
    now: dt.datetime | None = None,
    issued_by: str | None = None,
) -> CloseResult:
    """Close `period`: issue it if it never was, say whether a recomputation is identical, or (with `correct`)
    issue correction notes for what changed. Raises LedgerError/ChargebackError/CatalogError with a message."""
    period = period if isinstance(period, Period) else Period.parse(period)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    _check_ended(period, now)
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(Path(catalog))
    settings = prometheus if isinstance(prometheus, PrometheusSettings) else PrometheusSettings(url=prometheus)
    out = Path(out)
    target = ledger
    if target is None:
        target = default_ledger(out)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create {target.parent} for the ledger: {e.strerror}; pick another --out") from e
    who = issued_by or issuer_identity()
    with Ledger(target) as book, book.closing(period.label) as connection:
        existing = book.issues(period=period.label, connection=connection)
        if correct and not existing:
            raise LedgerError(
                f"{period.label} was never closed in ledger {book.name}: close it first (without --correct)"
            )
        run = run_period(
            period,
            catalog,
            settings,
            None,
            cluster=cluster,
            cluster_label=cluster_label,
            matchers=matchers,
            billing_mode=billing_mode,
        )
        with PrometheusClient(settings) as client:
            server_version = client.build_version()
        fingerprint = build_fingerprint(
            run.chargeback,
            catalog_root=Path(catalog.root),
            prometheus_url=settings.url,
            server_version=server_version,
            queries=run.queries,
            issued_by=who,
            issued_at=now,
        )
        if not existing:
            # Month over month against the previous month as closed (with its corrections) when the ledger has it.
            history = (
                None
                if previous is not None
                else previous_from_ledger(book, period, run.chargeback.currency, connection)
            ) or previous_period(run.chargeback, out, previous)
            issue = _original(run, fingerprint, history, who, now)
            book.append(connection, issue)
            outcome, changes, in_force = "issued", [], {}
        else:
            in_force = month_in_force(existing)
            changes = differences(in_force, chargeback_lines(run.chargeback))
            if not changes:
                return CloseResult("identical", period.label, book.name, in_force=in_force, warnings=run.warnings)
            if not correct:
                return CloseResult(
                    "differs", period.label, book.name, differences=changes, in_force=in_force, warnings=run.warnings
                )
            sequence = max(i.sequence for i in existing) + 1
            issue = _correction(run, fingerprint, in_force, changes, sequence, now, who)
            book.append(connection, issue)
            outcome = "corrected"
    # Committed: now the files. A failure here leaves the ledger right; `chargeback ledger export` rewrites them.
    try:
        if outcome == "issued":
            written = write_reports(run.chargeback, out, render_files=lambda _: issue.files)
        else:
            written = write_new_files(out, issue.files)
    except OutputError as e:
        raise OutputError(
            f"{period.label} is issued in ledger {book.name}, but {e}; write them from the ledger with "
            f"chargeback ledger export --ledger {book.name} --from {issue.billing_period} --to {issue.billing_period} "
            "--format files --out DIR"
        ) from e
    return CloseResult(outcome, period.label, book.name, issue, changes, in_force, written, run.warnings)


def _original(
    run: PeriodRun, fingerprint: dict[str, Any], history: PreviousPeriod | None, who: str, now: dt.datetime
) -> Issue:
    chargeback = run.chargeback
    invoices = chargeback.invoices
    focus = csv_text(FOCUS_COLUMNS, focus_rows(chargeback))
    # The hash covers the billed content only, so it can be printed on the documents it identifies.
    digest = content_hash(invoice_documents(chargeback, invoices, {i.business_unit.id: "" for i in invoices}), focus)
    issue = Issue(
        period=chargeback.period.label,
        sequence=0,
        kind="original",
        billing_period=chargeback.period.label,
        content_hash=digest,
        fingerprint=fingerprint,
        issued_at=iso_utc(now),
        issued_by=who,
    )
    files = report_files(chargeback, history, issue=issue_summary(issue))
    if files["focus.csv"] != focus:
        raise LedgerError("internal: focus.csv of the reports differs from the FOCUS rows hashed for the ledger")
    contents = {i.business_unit.id: files[f"invoices/{i.business_unit.id}.json"] for i in invoices}
    return Issue(
        **{**issue.__dict__, "documents": tuple(invoice_documents(chargeback, invoices, contents)), "files": files}
    )


def _correction(
    run: PeriodRun,
    fingerprint: dict[str, Any],
    in_force: dict[str, UnitState],
    changes: list[Difference],
    sequence: int,
    now: dt.datetime,
    who: str,
) -> Issue:
    chargeback = run.chargeback
    label, currency = chargeback.period.label, chargeback.currency
    billing = Period(now.year, now.month)
    units = {u.id: u for u in chargeback.catalog.units}
    by_unit: dict[str, list[Difference]] = {}
    for change in changes:
        by_unit.setdefault(change.business_unit, []).append(change)
    drafts = []
    for unit_id, unit_changes in sorted(by_unit.items()):
        state = in_force.get(unit_id)
        original = (
            state.invoice
            if state and state.invoice
            else f"RP-{chargeback.period.year:04d}-{chargeback.period.month:02d}-{unit_id}"
        )
        lines = correction_lines(unit_changes)
        total = note_total(lines, currency)
        drafts.append(
            {
                "number": note_number(original, sequence),
                "kind": "credit_note" if total < 0 else "debit_note",
                "business_unit": unit_id,
                "reference": state.invoice if state else None,
                "total": total,
                "lines": lines,
                "before": state.total if state else Decimal(0),
                "chain": list(state.chain) if state else [],
            }
        )
    focus = csv_text(
        FOCUS_COLUMNS,
        [
            row
            for draft in drafts
            for row in correction_rows(
                chargeback.catalog,
                chargeback.period,
                billing,
                draft["business_unit"],
                draft["number"],
                draft["lines"],
                currency,
                chargeback.billing_mode.value,
            )
        ],
    )
    bare = [
        Document(
            d["number"],
            d["kind"],
            d["business_unit"],
            d["reference"],
            currency,
            text(d["total"]),
            "",
            tuple(d["lines"]),
        )
        for d in drafts
    ]
    issue = Issue(
        period=label,
        sequence=sequence,
        kind="correction",
        billing_period=billing.label,
        content_hash=content_hash(bare, focus),
        fingerprint=fingerprint,
        issued_at=iso_utc(now),
        issued_by=who,
    )
    summary = issue_summary(issue)
    env = html_environment(currency)
    files = {f"corrections/C{sequence}/focus.csv": focus}
    documents = []
    for draft, document in zip(drafts, bare, strict=True):
        unit = units.get(draft["business_unit"])
        after = draft["before"] + draft["total"]
        note = {
            "number": draft["number"],
            "kind": draft["kind"],
            "references": draft["reference"],
            "period": label,
            "period_start": iso_utc(chargeback.period.start),
            "period_end": iso_utc(chargeback.period.end),
            "billing_period": billing.label,
            "issuer": chargeback.catalog.rates.issuer.model_dump(),
            "business_unit": {
                "id": draft["business_unit"],
                "display_name": unit.display_name if unit else UNALLOCATED_NAME,
                "cost_center": unit.cost_center if unit else "",
            },
            "currency": currency,
            "total": text(draft["total"]),
            "before": text(draft["before"]),
            "after": text(after),
            "lines": draft["lines"],
            "chain": [{"number": n, "kind": k, "total": t, "issued_at": at} for n, k, t, at in draft["chain"]]
            + [
                {
                    "number": draft["number"],
                    "kind": draft["kind"],
                    "total": text(draft["total"]),
                    "issued_at": iso_utc(now),
                }
            ],
            "issue": summary,
        }
        content = json.dumps(note, indent=2, ensure_ascii=False) + "\n"
        base = f"corrections/C{sequence}/{draft['business_unit']}"
        files[f"{base}.json"] = content
        files[f"{base}.html"] = render(env, "correction.html.j2", note=note)
        documents.append(Document(**{**document.__dict__, "content": content}))
    return Issue(**{**issue.__dict__, "documents": tuple(documents), "files": files})
