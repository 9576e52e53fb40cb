"""The ledger database: open (SQLite file or PostgreSQL URL), migrate, lock for a close, append, read.

SQLite is the embedded default (`--ledger ledger.db`); a team shares PostgreSQL
(`--ledger postgresql://user@host/db`, driven by psycopg 3). Alembic brings the schema to the newest
revision whenever a ledger is opened. One `close` at a time holds the ledger's close lock for its whole
run (SQLite: `BEGIN IMMEDIATE`, the database's single writer lock; PostgreSQL: a transaction-scoped
advisory lock); a second one fails at once with LedgerBusyError instead of waiting, and an aborted run
leaves nothing behind because everything it issues is one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from ..errors import LedgerBusyError, LedgerError
from . import schema

CLOSE_LOCK_KEY = 0x7265736F75726365  # PostgreSQL advisory lock id of `chargeback close` ("resource")
SQLITE_BUSY_MS = 10_000
"""How long a reader or a migration waits for a close to commit on SQLite."""


@dataclass(frozen=True)
class Document:
    """An issued document: an invoice, or a credit or debit note correcting one."""

    number: str
    kind: str
    """invoice | credit_note | debit_note"""
    business_unit: str
    reference: str | None
    """The invoice number a note corrects (None for invoices)."""
    currency: str
    total: str
    content: str
    """The document's JSON report, as issued."""
    lines: tuple[dict[str, str], ...]
    """Text fields of schema.LINE_FIELDS."""


@dataclass(frozen=True)
class Issue:
    """One close that issued documents: the original invoices of a month, or a set of corrections."""

    period: str
    sequence: int
    kind: str
    """original | correction"""
    billing_period: str
    content_hash: str
    fingerprint: dict[str, Any]
    issued_at: str
    issued_by: str
    documents: tuple[Document, ...] = ()
    files: dict[str, str | bytes] = field(default_factory=dict)
    """Relative path → content of the report files issued with it: text, or bytes (the printed PDFs)."""


def ledger_url(target: str | Path) -> sa.URL:
    """A `--ledger` value as a SQLAlchemy URL: a path is a SQLite file; postgresql:// URLs use psycopg 3."""
    text = str(target)
    if "://" not in text:
        return make_url(f"sqlite:///{Path(text).expanduser().resolve()}")
    try:
        url = make_url(text)
    except sa.exc.ArgumentError as e:
        raise LedgerError(f"--ledger {text!r} is not a database URL: write a path or postgresql://user@host/db") from e
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername == "sqlite":
        return url
    raise LedgerError(
        f"--ledger {url.render_as_string(hide_password=True)}: the ledger runs on SQLite (a path) or PostgreSQL "
        f"(postgresql://user@host/db), not {url.drivername}"
    )


def _sqlite_engine(url: sa.URL) -> Engine:
    if url.database:
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise LedgerError(f"ledger {url.database}: folder {folder} does not exist; create it or pick another path")
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000})

    # pysqlite's own transaction handling would start transactions late and never as IMMEDIATE; take it over
    # (the SQLAlchemy documentation's recipe for SQLite transactions) so the close lock is the writer lock.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get("close_lock"):
            connection.exec_driver_sql("PRAGMA busy_timeout = 0")
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("writer") else "BEGIN")

    return engine


class Ledger:
    """A ledger database, migrated to the newest schema when opened."""

    def __init__(self, target: str | Path) -> None:
        self.url = ledger_url(target)
        self.dialect = self.url.get_backend_name()
        sqlite = self.dialect == "sqlite" and self.url.database
        self.name = str(self.url.database) if sqlite else self.url.render_as_string(hide_password=True)
        self.engine = _sqlite_engine(self.url) if self.dialect == "sqlite" else sa.create_engine(self.url)
        self._migrate()

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.dispose()

    # ------------------------------------------------------------ schema

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(resources.files("chargeback.ledger") / "migrations"))
        head = ScriptDirectory.from_config(config).get_current_head()
        try:
            # Up to date (the usual case): a plain read, so a close holding the writer lock does not block it.
            with self.engine.connect() as connection, connection.begin():
                revisions = MigrationContext.configure(connection).get_current_heads()
                if len(revisions) > 1:
                    raise LedgerError(
                        f"ledger {self.name}: its alembic_version table holds {len(revisions)} schema revisions "
                        f"({', '.join(sorted(revisions))}) where chargeback writes one; the database was altered "
                        "outside chargeback — restore it from a backup, or delete the rows that are not the newest "
                        f"revision ({head})"
                    )
                if revisions == (head,):
                    return
            with self.engine.connect().execution_options(writer=True) as connection, connection.begin():
                if self.dialect == "postgresql":
                    # Two first runs at once would both create the tables; the second waits for the first.
                    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLOSE_LOCK_KEY + 1})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except sa.exc.OperationalError as e:
            if "locked" in str(e.orig).lower():
                raise LedgerBusyError(
                    f"ledger {self.name} stayed locked by another chargeback close for {SQLITE_BUSY_MS // 1000} s "
                    "while this run prepared it; nothing was written — run again when the other close has finished"
                ) from e
            raise LedgerError(f"cannot open the ledger {self.name}: {_reason(e)}; {self._hint()}") from e
        except sa.exc.SQLAlchemyError as e:
            raise LedgerError(f"cannot open the ledger {self.name}: {_reason(e)}; {self._hint()}") from e

    def _hint(self) -> str:
        if self.dialect == "sqlite":
            return "check the path, its permissions, and that the file is a ledger"
        return "check that PostgreSQL runs at that address, the user, password and database name"

    # ------------------------------------------------------------ close lock

    @contextmanager
    def closing(self, period: str) -> Iterator[Connection]:
        """A transaction holding the close lock: commits when the block ends, rolls back on an exception.
        Raises LedgerBusyError at once when another close holds the lock."""
        busy = LedgerBusyError(
            f"ledger {self.name} is being written by another chargeback close; {period} was not closed by this run "
            "and nothing was written. Wait for the other run to finish, then run close again (it is a no-op if the "
            "month is already issued with the same figures)"
        )
        try:
            connection = self.engine.connect().execution_options(close_lock=True)
        except sa.exc.SQLAlchemyError as e:
            raise LedgerError(f"cannot open the ledger {self.name}: {_reason(e)}; {self._hint()}") from e
        with connection:
            try:
                transaction = connection.begin()
            except sa.exc.OperationalError as e:
                if "locked" in str(e.orig).lower():
                    raise busy from e
                raise LedgerError(f"cannot lock the ledger {self.name}: {_reason(e)}") from e
            try:
                if self.dialect == "postgresql":
                    locked = connection.execute(
                        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CLOSE_LOCK_KEY}
                    ).scalar_one()
                    if not locked:
                        raise busy
                yield connection
                transaction.commit()
            except BaseException:
                transaction.rollback()
                raise

    # ------------------------------------------------------------ writing

    def append(self, connection: Connection, issue: Issue) -> None:
        """Insert an issue with its documents, lines and files (inside `closing`); a report path outside the
        report folder is refused before anything is written."""
        for path in issue.files:
            report_path(path)
        report_path(issue.period)
        try:
            issue_id = connection.execute(
                schema.issues.insert().returning(schema.issues.c.id),
                {
                    "period": issue.period,
                    "sequence": issue.sequence,
                    "kind": issue.kind,
                    "billing_period": issue.billing_period,
                    "content_hash": issue.content_hash,
                    "fingerprint": canonical_json(issue.fingerprint),
                    "issued_at": issue.issued_at,
                    "issued_by": issue.issued_by,
                },
            ).scalar_one()
            for document in issue.documents:
                document_id = connection.execute(
                    schema.documents.insert().returning(schema.documents.c.id),
                    {
                        "issue_id": issue_id,
                        "number": document.number,
                        "kind": document.kind,
                        "business_unit": document.business_unit,
                        "reference": document.reference,
                        "currency": document.currency,
                        "total": document.total,
                        "content": document.content,
                    },
                ).scalar_one()
                if document.lines:
                    connection.execute(
                        schema.lines.insert(),
                        [
                            {"document_id": document_id, "position": i, **{k: line[k] for k in schema.LINE_FIELDS}}
                            for i, line in enumerate(document.lines)
                        ],
                    )
            for table, kind in ((schema.files, str), (schema.binary_files, bytes)):
                rows = [
                    {"issue_id": issue_id, "path": path, "sha256": sha256_of(content), "content": content}
                    for path, content in sorted(issue.files.items())
                    if isinstance(content, kind)
                ]
                if rows:
                    connection.execute(table.insert(), rows)
        except sa.exc.IntegrityError as e:
            raise LedgerError(
                f"ledger {self.name} refused {issue.period} (sequence {issue.sequence}): {_reason(e)}; another run "
                "issued it first — run close again to compare"
            ) from e

    # ------------------------------------------------------------ reading

    def issues(
        self,
        *,
        period: str | None = None,
        billing_from: str | None = None,
        billing_to: str | None = None,
        connection: Connection | None = None,
        details: bool = True,
        files: bool = True,
    ) -> list[Issue]:
        """Issues in issue order, optionally of one period or of billing periods in [from, to]; with
        `details` their documents and lines, and with `files` too the report files."""
        query = sa.select(schema.issues).order_by(schema.issues.c.id)
        if period is not None:
            query = query.where(schema.issues.c.period == period)
        if billing_from is not None:
            query = query.where(schema.issues.c.billing_period >= billing_from)
        if billing_to is not None:
            query = query.where(schema.issues.c.billing_period <= billing_to)
        try:
            if connection is not None:
                return self._read(connection, query, details, files)
            with self.engine.connect() as own:
                return self._read(own, query, details, files)
        except sa.exc.SQLAlchemyError as e:
            raise LedgerError(f"cannot read the ledger {self.name}: {_reason(e)}; {self._hint()}") from e

    def _read(self, connection: Connection, query: sa.Select, details: bool, with_files: bool) -> list[Issue]:
        rows = connection.execute(query).mappings().all()
        result = []
        for row in rows:
            documents: tuple[Document, ...] = ()
            files: dict[str, str | bytes] = {}
            if details:
                documents = tuple(self._documents(connection, row["id"]))
                files = self._files(connection, row)
                self._verify(row, documents, files)
            result.append(
                Issue(
                    period=row["period"],
                    sequence=row["sequence"],
                    kind=row["kind"],
                    billing_period=row["billing_period"],
                    content_hash=row["content_hash"],
                    fingerprint=json.loads(row["fingerprint"]),
                    issued_at=row["issued_at"],
                    issued_by=row["issued_by"],
                    documents=documents,
                    files=files if with_files else {},
                )
            )
        return result

    def _files(self, connection: Connection, row: Any) -> dict[str, str | bytes]:
        """The issue's report files (text, and the issued PDFs' bytes), each checked against its recorded sha256
        and for a path inside the report folder."""
        files: dict[str, str | bytes] = {}
        for table in (schema.files, schema.binary_files):
            file_rows = connection.execute(
                sa.select(table.c.path, table.c.content, table.c.sha256).where(table.c.issue_id == row["id"])
            ).all()
            for path, stored, digest in file_rows:
                try:
                    report_path(path)
                    report_path(row["period"])
                except LedgerError as e:
                    raise self._altered(row, str(e)) from None
                content = stored if isinstance(stored, str) else bytes(stored)
                if sha256_of(content) != digest:
                    raise self._altered(row, f"file {path} does not match its recorded sha256")
                files[path] = content
        return dict(sorted(files.items()))

    def _verify(self, row: Any, documents: tuple[Document, ...], files: dict[str, str | bytes]) -> None:
        """Refuse an issue whose rows no longer say what was issued: each document row against its issued JSON
        report, then everything billed against the content hash recorded at issue."""
        focus = files.get(focus_name(row["kind"], row["sequence"]))
        if focus is None:
            raise self._altered(row, f"its {focus_name(row['kind'], row['sequence'])} is missing")
        for document in documents:
            issued = files.get(document_name(row["kind"], row["sequence"], document.business_unit))
            if issued is not None and issued != document.content:
                raise self._altered(row, f"document {document.number} differs from its issued report file")
            try:
                report = json.loads(document.content)
                stated = {
                    "number": report.get("invoice_number", report.get("number")),
                    "currency": report.get("currency"),
                    "total": Decimal(str(report.get("total"))),
                }
                stored = {"number": document.number, "currency": document.currency, "total": Decimal(document.total)}
            except (ValueError, AttributeError, InvalidOperation):
                raise self._altered(row, f"document {document.number}: its content is not its JSON report") from None
            for name, value in stored.items():
                if value != stated[name]:
                    raise self._altered(
                        row,
                        f"document {document.number}: {name} {value} in the ledger row, {stated[name]} in its "
                        "issued report",
                    )
        recomputed = content_hash(documents, focus)
        if recomputed != row["content_hash"]:
            raise self._altered(
                row,
                f"its documents' lines or FOCUS rows no longer match the content hash recorded at issue "
                f"({row['content_hash'][:12]}…, now {recomputed[:12]}…)",
            )

    def _altered(self, row: Any, what: str) -> LedgerError:
        return LedgerError(
            f"ledger {self.name}: {row['period']} (sequence {row['sequence']}, {row['kind']}) was altered outside "
            f"chargeback — {what}; nothing is read from a tampered ledger: restore it from a backup, or compare with "
            "the issued documents (their short hash is the content hash)"
        )

    def _documents(self, connection: Connection, issue_id: int) -> Iterator[Document]:
        rows = connection.execute(
            sa.select(schema.documents).where(schema.documents.c.issue_id == issue_id).order_by(schema.documents.c.id)
        ).mappings()
        for row in rows.all():
            lines = connection.execute(
                sa.select(*(schema.lines.c[name] for name in schema.LINE_FIELDS))
                .where(schema.lines.c.document_id == row["id"])
                .order_by(schema.lines.c.position)
            ).mappings()
            yield Document(
                number=row["number"],
                kind=row["kind"],
                business_unit=row["business_unit"],
                reference=row["reference"],
                currency=row["currency"],
                total=row["total"],
                content=row["content"],
                lines=tuple(dict(line) for line in lines.all()),
            )


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text (and hash)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def sha256_of(content: str | bytes) -> str:
    """sha256 of a report file's bytes (text as UTF-8, as it is written)."""
    return hashlib.sha256(content if isinstance(content, bytes) else content.encode("utf-8")).hexdigest()


def content_hash(documents: Iterable[Document], focus: str) -> str:
    """sha256 of what an issue bills: every document's number, kind, unit, reference, total and lines, and its
    FOCUS rows. Report layout (HTML, charts) is not part of it, so the hash names the money, not the styling."""
    billed = [
        {
            "number": d.number,
            "kind": d.kind,
            "business_unit": d.business_unit,
            "reference": d.reference,
            "currency": d.currency,
            "total": d.total,
            "lines": list(d.lines),
        }
        for d in documents
    ]
    return sha256_text(canonical_json({"documents": billed, "focus": focus}))


def report_path(path: str) -> str:
    """`path` when it names a file inside a report folder: relative, `/`-separated, no `.` or `..` step.
    The ledger refuses anything else on INSERT and on every read, so an export never writes outside --out."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(c in path for c in "\\\0")
        or ":" in parts[0]
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise LedgerError(
            f"report file path {path!r} is not a relative path inside the report folder (no leading /, no . or .. "
            "step, no backslash or drive)"
        )
    return path


def focus_name(kind: str, sequence: int) -> str:
    """The FOCUS file of an issue, among its report files."""
    return "focus.csv" if kind == "original" else f"corrections/C{sequence}/focus.csv"


def document_name(kind: str, sequence: int, business_unit: str) -> str:
    """The issued JSON report of a document, among its issue's report files."""
    return f"invoices/{business_unit}.json" if kind == "original" else f"corrections/C{sequence}/{business_unit}.json"


def _reason(error: sa.exc.SQLAlchemyError) -> str:
    """The database's own words, without SQLAlchemy's statement dump and link."""
    original = getattr(error, "orig", None)
    return str(original if original is not None else error).strip().splitlines()[0]
