"""The ledger keeps the issued PDFs: the bytes of each file that is not text, with their sha256.

Revision ID: 0002_issued_pdfs
Revises: 0001_ledger
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_issued_pdfs"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

TABLE = "ledger_binary_files"
REFUSAL = "issued documents are append-only; correct a closed month with chargeback close --correct"


def upgrade() -> None:
    # Frozen copy of the table as of this revision (schema.py describes the newest state).
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("ledger_issues.id"), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("issue_id", "path", name="uq_ledger_binary_files_issue_path"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE}: {REFUSAL}'); END"
            )
    elif dialect == "postgresql":
        # ledger_refuse_change() is the function of revision 0001.
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    else:
        raise NotImplementedError(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only: issued documents are never dropped")
