"""Tables of the ledger of issued documents (SQLAlchemy Core; the migrations in `migrations/` create them).

An *issue* is one `chargeback close` that issued something: the original invoices of a month (sequence 0)
or a set of correction notes (sequence 1, 2 …). It holds the issued documents, their lines and the
report files exactly as written (text in `ledger_files`, the printed PDFs as bytes in `ledger_binary_files`).
Money, quantities and times are stored as the text the reports print
(fixed-point decimals, ISO 8601 UTC), so nothing is rounded by a database type and an export
reproduces the issued bytes. Every table is append-only: triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

issues = Table(
    "ledger_issues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("period", String(7), nullable=False, comment="The month billed, YYYY-MM."),
    Column("sequence", Integer, nullable=False, comment="0: the original close; 1, 2 …: corrections."),
    Column("kind", String(16), nullable=False, comment="original | correction"),
    Column("billing_period", String(7), nullable=False, comment="Billing period the documents fall in."),
    Column("content_hash", String(64), nullable=False, comment="sha256 of the billed content, see content_hash()."),
    Column("fingerprint", Text, nullable=False, comment="Inputs of the run as canonical JSON."),
    Column("issued_at", String(20), nullable=False),
    Column("issued_by", String(200), nullable=False),
    UniqueConstraint("period", "sequence", name="uq_ledger_issues_period_sequence"),
)

documents = Table(
    "ledger_documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("ledger_issues.id"), nullable=False),
    Column("number", String(200), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, comment="invoice | credit_note | debit_note"),
    Column("business_unit", String(200), nullable=False),
    Column("reference", String(200), nullable=True, comment="The invoice a note corrects."),
    Column("currency", String(3), nullable=False),
    Column("total", String(40), nullable=False),
    Column("content", Text, nullable=False, comment="The document as its JSON report."),
)

LINE_FIELDS: tuple[str, ...] = (
    "entry",
    "cluster",
    "namespace",
    "resource",
    "tier",
    "rate_effective_from",
    "charge_period_start",
    "charge_period_end",
    "usage_quantity",
    "usage_unit",
    "billed_quantity",
    "unit",
    "unit_price",
    "amount",
    "shared_split",
    "share",
)
"""Text fields of a ledger line; `entry` is `charge`, or `reversal` for a correction line cancelling an
earlier charge."""

lines = Table(
    "ledger_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", Integer, ForeignKey("ledger_documents.id"), nullable=False),
    Column("position", Integer, nullable=False),
    *(Column(name, String(200), nullable=False) for name in LINE_FIELDS),
)

files = Table(
    "ledger_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("ledger_issues.id"), nullable=False),
    Column("path", String(400), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", Text, nullable=False),
    UniqueConstraint("issue_id", "path", name="uq_ledger_files_issue_path"),
)

binary_files = Table(
    "ledger_binary_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("ledger_issues.id"), nullable=False),
    Column("path", String(400), nullable=False),
    Column("sha256", String(64), nullable=False, comment="sha256 of the bytes as issued."),
    Column("content", LargeBinary, nullable=False, comment="The file's bytes as issued (the PDFs a close printed)."),
    UniqueConstraint("issue_id", "path", name="uq_ledger_binary_files_issue_path"),
)
"""Report files that are not text: the PDFs a close printed, kept as issued (Chromium's bytes depend on its
version, so printing the stored HTML again would not give back the issued file)."""

APPEND_ONLY_TABLES: tuple[str, ...] = (
    "ledger_issues",
    "ledger_documents",
    "ledger_lines",
    "ledger_files",
    "ledger_binary_files",
)
