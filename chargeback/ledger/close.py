"""Month close: issue a month into the ledger, compare a recomputation with it, or correct it.

`close_month` holds the ledger's close lock from before it reads the ledger until it has appended
what it issues, so two closes never both issue a month; everything it issues is one transaction,
and report files are written only after that transaction committed (staged, then moved into place).
A closed month is never rewritten: a recomputation that differs is issued as correction notes. What is
issued is printed to PDF (Chromium) before the transaction commits, and the PDFs are kept in the ledger.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from pool_catalog import Catalog, load_catalog
from pool_catalog.models import BillingMode
from pool_catalog.pricing import round_money

from ..collect.prometheus import PrometheusClient, PrometheusSettings
from ..collect.promql import LabelMatcher
from ..errors import LedgerError, OutputError
from ..outputs.csv_tables import csv_text
from ..outputs.focus import COLUMNS as FOCUS_COLUMNS
from ..outputs.focus import FOCUS_VERSION, FOCUS_VERSIONS, correction_rows, files_in_version, focus_rows
from ..outputs.history import PreviousPeriod
from ..outputs.html import html_environment, render
from ..outputs.reports import previous_period, report_files
from ..outputs.writer import printed_files, write_new_files, write_reports
from ..period import Period, iso_utc
from ..rate.invoices import UNALLOCATED_NAME, text
from ..run import PeriodRun, run_period
from .datasets import dataset_files
from .documents import (
    BelowThreshold,
    Difference,
    UnitState,
    by_materiality,
    chargeback_lines,
    correction_lines,
    differences,
    invoice_documents,
    month_in_force,
    note_number,
    note_total,
)
from .fingerprint import build_fingerprint, issuer_identity, refuse_dirty_catalog
from .reading import previous_from_ledger
from .store import Document, Issue, Ledger, content_hash


@dataclass(frozen=True)
class CloseResult:
    """What a close did: `issued` (the original), `corrected`, `identical` (nothing to do), `differs`
    (figures changed; nothing issued without --correct) or `below_threshold` (--correct: every unit's change is
    below rates.yaml corrections.materiality; the decision is recorded, no note issued). `below`: the units left
    below the threshold; `recorded`: the sequence of the ledger issue that records them."""

    outcome: str
    period: str
    ledger: str
    issue: Issue | None = None
    differences: list[Difference] = field(default_factory=list)
    in_force: dict[str, UnitState] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    below: list[BelowThreshold] = field(default_factory=list)
    materiality: Decimal = Decimal(0)
    recorded: int | None = None


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
    focus_version: str = FOCUS_VERSION,
    now: dt.datetime | None = None,
    issued_by: str | None = None,
    allow_dirty_catalog: bool = False,
    accept_coverage_loss: bool = False,
) -> CloseResult:
    """Close `period`: issue it if it never was, say whether a recomputation is identical, or (with `correct`)
    issue correction notes for what changed, for units whose change reaches rates.yaml corrections.materiality.
    A catalog with uncommitted changes is refused unless `allow_dirty_catalog`; corrections from a recomputation
    that covers fewer namespace-hours than the month was issued with are refused unless `accept_coverage_loss`.
    The ledger keeps FOCUS 1.4 rows; the focus.csv files written to `out` are in `focus_version`.
    Raises LedgerError/ChargebackError/CatalogError with a message."""
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(Path(catalog))
    period = (period if isinstance(period, Period) else Period.parse(period)).in_zone(catalog.pool.billing.time_zone)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    _check_ended(period, now)
    if focus_version not in FOCUS_VERSIONS:  # before anything is issued
        raise LedgerError(f"FOCUS version {focus_version!r}: write one of {', '.join(FOCUS_VERSIONS)}")
    if not allow_dirty_catalog:
        refuse_dirty_catalog(Path(catalog.root))
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
            issue = _with_pdfs(_original(run, fingerprint, history, who, now), run, out, now)
            book.append(connection, issue)
            datasets = dataset_files(book.issues(connection=connection), issue)
            outcome, changes, in_force = "issued", [], {}
        else:
            in_force = month_in_force(existing)
            changes = differences(in_force, chargeback_lines(run.chargeback))
            if not changes:
                return CloseResult("identical", period.label, book.name, in_force=in_force, warnings=run.warnings)
            # As money of the card's currency (checked to be a multiple of its minor unit): 1.00, not YAML's 1.0.
            materiality = round_money(catalog.rates.corrections.materiality, catalog.rates.currency)
            material, below = by_materiality(changes, materiality)
            lost = coverage_lost(existing, fingerprint["coverage"])
            found = CloseResult(
                "differs",
                period.label,
                book.name,
                None,
                changes,
                in_force,
                [],
                [*run.warnings, *lost],
                below,
                materiality,
            )
            if not correct:
                return found
            if lost and not accept_coverage_loss:
                raise LedgerError(
                    f"refusing to correct {period.label}: the recomputation covers less than the month was issued "
                    "with, so its differences would credit data Prometheus has lost, not usage that changed:\n  "
                    + "\n  ".join(lost)
                    + "\n  fix: recompute from a Prometheus (or Thanos store) that still holds the whole month; to "
                    "issue the notes anyway pass --accept-coverage-loss"
                )
            # The decision is part of the issue: which units were left below the threshold, and at what amounts.
            decision = {"materiality": text(materiality), "below": [b.as_dict() for b in below]}
            last = max(existing, key=lambda i: i.sequence)
            if not material and last.fingerprint.get("corrections") == decision:  # recorded by the last --correct
                return replace(found, outcome="below_threshold", recorded=last.sequence)
            sequence = last.sequence + 1
            fingerprint = {**fingerprint, "corrections": decision}
            issue = _with_pdfs(_correction(run, fingerprint, in_force, material, sequence, now, who), run, out, now)
            book.append(connection, issue)
            datasets = dataset_files(book.issues(connection=connection), issue)
            outcome = "corrected" if material else "below_threshold"
    # Committed: now the files. A failure here leaves the ledger right; `chargeback ledger export` rewrites them.
    try:
        if outcome == "issued":
            written = write_reports(
                run.chargeback, out, render_files=lambda _: {**issue.files, **datasets}, focus_version=focus_version
            )
        else:
            written = write_new_files(out, {**files_in_version(issue.files, focus_version), **datasets})
    except OutputError as e:
        raise OutputError(
            f"{period.label} is issued in ledger {book.name}, but {e}; write them from the ledger with "
            f"chargeback ledger export --ledger {book.name} --from {issue.billing_period} --to {issue.billing_period} "
            "--format files --out DIR"
        ) from e
    result = CloseResult(outcome, period.label, book.name, issue, changes, in_force, written, run.warnings)
    if outcome == "issued":
        return result
    recorded = issue.sequence if outcome == "below_threshold" else None
    return replace(result, below=found.below, materiality=found.materiality, recorded=recorded)


def coverage_lost(existing: Sequence[Issue], recomputed: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What the recomputation no longer covers, per cluster, against the original issue's fingerprint coverage
    (namespace-hours seen and covered by scrapes): lost data, which a correction would turn into credit notes."""
    original = min((i for i in existing if i.kind == "original"), key=lambda i: i.sequence, default=None)
    issued = (original.fingerprint.get("coverage") or {}) if original is not None else {}
    lost = []
    for cluster, before in sorted(issued.items()):
        now = recomputed.get(cluster, {"namespace_hours_seen": 0, "namespace_hours_covered": "0"})
        seen_before, seen_now = int(before["namespace_hours_seen"]), int(now["namespace_hours_seen"])
        covered_before = Decimal(str(before["namespace_hours_covered"]))
        covered_now = Decimal(str(now["namespace_hours_covered"]))
        if seen_now < seen_before or covered_now < covered_before:
            lost.append(
                f"cluster {cluster}: issued with {covered_before} of {seen_before} namespace-hours covered by scrapes, "
                f"recomputed with {covered_now} of {seen_now}"
            )
    return lost


def _with_pdfs(issue: Issue, run: PeriodRun, out: Path, now: dt.datetime) -> Issue:
    """The issue with its HTML documents printed to PDF, dated when issued, to be stored as issued: printed
    before the ledger commits, so a close that cannot print (no Chromium) issues nothing. Stored bytes, not
    printed again on export, because another Chromium version prints other bytes."""
    pdfs = printed_files(issue.files, out, run.chargeback, dated=now)
    return Issue(**{**issue.__dict__, "files": {**issue.files, **pdfs}})


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
    billing = Period.of(now, chargeback.period.time_zone)
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
            **({"time_zone": chargeback.period.zone_name} if chargeback.period.zone_name else {}),
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
