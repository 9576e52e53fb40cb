"""What the pages read, all of it cheap: the catalog (reloaded only when one of its files changed) and the issued
months in the ledger (documents as issued; no Prometheus query while a person waits)."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from chargeback.ledger.documents import UnitState, month_in_force
from chargeback.ledger.store import Document, Issue, Ledger, ledger_url
from chargeback.ledger_cli import EXPORTS
from chargeback.rate.documents import Invoice
from pool_catalog import Catalog, load_catalog


class CatalogCache:
    """The catalog, loaded again when a file under the catalog directory changed (size or modification time)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._catalog: Catalog | None = None

    def _files(self) -> tuple[tuple[str, int, int], ...]:
        found = []
        for path in sorted(self.root.rglob("*.yaml")):
            stat = path.stat()
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def get(self) -> Catalog:
        """The catalog as its files are now; a CatalogError (the files do not validate) propagates."""
        with self._lock:
            signature = self._files()
            if self._catalog is None or signature != self._signature:
                self._catalog = load_catalog(self.root)
                self._signature = signature
            return self._catalog


@dataclass(frozen=True)
class MonthStatus:
    """A month in the ledger: closed (its original only) or corrected (notes issued after it)."""

    period: str
    status: str
    issued_at: str
    issued_by: str
    corrections: int
    totals: dict[str, Decimal]
    currency: str


@dataclass(frozen=True)
class UnitDocument:
    """One of a unit's issued documents with the issue it belongs to."""

    issue: Issue
    document: Document

    @property
    def invoice(self) -> Invoice:
        return Invoice.model_validate_json(self.document.content)


class LedgerReader:
    """Reads the ledger of issued months; a SQLite ledger that does not exist yet reads as empty."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()
        self._cached: tuple[tuple[tuple[str, int], ...], list[Issue]] | None = None

    @property
    def display_name(self) -> str:
        """The ledger's path or URL as shown on a page: a password in the URL is masked."""
        url = ledger_url(self.target)
        return str(url.database) if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)

    def _open(self) -> Ledger | None:
        url = ledger_url(self.target)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            return None  # nothing closed yet; `chargeback close` (or the finance page) creates it
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.target)
            return self._ledger

    def issues(self, period: str | None = None, *, files: bool = False) -> list[Issue]:
        """Issues with their documents and lines (and report files with `files`). Without files they are read
        again only when the list of issues changed: issued rows are never updated or deleted (the ledger's
        triggers refuse it), so the same (period, sequence) list is the same content."""
        ledger = self._open()
        if ledger is None:
            return []
        if files:
            return ledger.issues(period=period, files=True)
        key = tuple((i.period, i.sequence) for i in ledger.issues(details=False))
        with self._lock:
            if self._cached is None or self._cached[0] != key:
                self._cached = (key, ledger.issues(files=False))
            cached = self._cached[1]
        return cached if period is None else [i for i in cached if i.period == period]

    def months(self) -> list[MonthStatus]:
        """Every issued month, newest first, with the totals in force per unit."""
        by_period: dict[str, list[Issue]] = {}
        for issue in self.issues():
            by_period.setdefault(issue.period, []).append(issue)
        result = []
        for period, issues in sorted(by_period.items(), reverse=True):
            original = min(issues, key=lambda i: i.sequence)
            in_force = month_in_force(issues)
            corrections = len(issues) - 1
            currency = next((s.currency for s in in_force.values()), "")
            result.append(
                MonthStatus(
                    period,
                    "corrected" if corrections else "closed",
                    original.issued_at,
                    original.issued_by,
                    corrections,
                    {unit: state.total for unit, state in in_force.items()},
                    currency,
                )
            )
        return result

    def unit_documents(self, unit: str) -> list[UnitDocument]:
        """The unit's documents (without the report files), newest month first, each invoice before its notes."""
        found = [
            UnitDocument(issue, document)
            for issue in self.issues()
            for document in issue.documents
            if document.business_unit == unit
        ]
        return sorted(found, key=lambda d: (d.issue.period, -d.issue.sequence), reverse=True)

    def issued_month_folder(self, unit: str, folder: Path) -> Path | None:
        """The unit's last issued invoice written where `pool request --history` reads it:
        `folder`/<period>/invoices/<unit>.json, as `chargeback ledger export --format files` writes it."""
        latest = next((d for d in self.unit_documents(unit) if d.document.kind == "invoice"), None)
        if latest is None:
            return None
        month = folder / latest.issue.period
        target = month / "invoices" / f"{unit}.json"
        if not target.is_file() or target.read_text(encoding="utf-8") != latest.document.content:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            staged.write_text(latest.document.content, encoding="utf-8")
            os.replace(staged, target)  # a reader sees the old or the new file, never half of one
        return month

    def unit_in_force(self, unit: str, period: str) -> UnitState | None:
        return month_in_force(self.issues(period)).get(unit)

    def dispose(self) -> None:
        if self._ledger is not None:
            self._ledger.dispose()


def unit_lines_csv(found: UnitDocument) -> str:
    """The document's lines as `chargeback ledger export --format csv` writes them, this document only."""
    issue = dataclasses.replace(found.issue, documents=(found.document,))
    return EXPORTS["csv"]([issue])


def unit_focus_csv(issue: Issue, unit: str) -> str:
    """The issue's FOCUS rows billed to `unit` (BillingAccountId), header as issued."""
    text = EXPORTS["focus"]([issue])
    header, _, _ = text.partition("\n")
    rows = csv.DictReader(io.StringIO(text))
    buffer = io.StringIO()
    buffer.write(header + "\n")
    writer = csv.DictWriter(buffer, fieldnames=rows.fieldnames or [], lineterminator="\n")
    for row in rows:
        if row.get("BillingAccountId") == unit:
            writer.writerow(row)
    return buffer.getvalue()


def report_file(issue: Issue, document: Document, suffix: str) -> str | None:
    """The report file issued with a document (invoices/<unit>.html, corrections/C1/<unit>.json …), if stored."""
    folder = "invoices" if issue.kind == "original" else f"corrections/C{issue.sequence}"
    return issue.files.get(f"{folder}/{document.business_unit}.{suffix}")
