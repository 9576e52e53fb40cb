"""The ledger: issues, documents, lines, report files; append-only by trigger.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("ledger_issues", "ledger_documents", "ledger_lines", "ledger_files")
REFUSAL = "issued documents are append-only; correct a closed month with chargeback close --correct"
LINE_FIELDS = (
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


def upgrade() -> None:
    # Frozen copy of the tables as of this revision (schema.py describes the newest state).
    op.create_table(
        "ledger_issues",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("billing_period", sa.String(7), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("issued_at", sa.String(20), nullable=False),
        sa.Column("issued_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("period", "sequence", name="uq_ledger_issues_period_sequence"),
    )
    op.create_table(
        "ledger_documents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("ledger_issues.id"), nullable=False),
        sa.Column("number", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("business_unit", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total", sa.String(40), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("document_id", sa.Integer, sa.ForeignKey("ledger_documents.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        *(sa.Column(name, sa.String(200), nullable=False) for name in LINE_FIELDS),
    )
    op.create_table(
        "ledger_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("ledger_issues.id"), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.UniqueConstraint("issue_id", "path", name="uq_ledger_files_issue_path"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for table in TABLES:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table}: {REFUSAL}'); END"
                )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '%: {REFUSAL}', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
    else:
        raise NotImplementedError(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only: issued documents are never dropped")
