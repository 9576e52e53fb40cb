"""Pending namespace requests: who asked, when, what (the request's fields), the estimate shown, and the
platform's decision (approver or decliner, when, the reason the unit sees). A small SQLite file beside the
ledger; the catalog file itself changes only when a request is approved."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PortalError

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    namespace TEXT NOT NULL,
    fields TEXT NOT NULL,
    estimate TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'declined')),
    decided_by TEXT,
    decided_at TEXT,
    reason TEXT
)
"""


@dataclass(frozen=True)
class StoredRequest:
    id: int
    unit: str
    namespace: str
    fields: dict[str, Any]
    estimate: dict[str, Any]
    submitted_by: str
    submitted_at: str
    status: str
    decided_by: str | None
    decided_at: str | None
    reason: str | None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RequestStore:
    """The requests file; each call opens its own connection (the server runs handlers in threads)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise PortalError(f"--requests {self.path}: folder {self.path.parent} does not exist; create it")
        with self._connect() as db:
            db.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as e:
            raise PortalError(f"cannot open the requests file {self.path}: {e}") from e
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    def add(self, unit: str, namespace: str, fields: dict[str, Any], estimate: dict[str, Any], who: str) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO requests (unit, namespace, fields, estimate, submitted_by, submitted_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (unit, namespace, json.dumps(fields), json.dumps(estimate), who, _now()),
            )
            return int(cursor.lastrowid or 0)

    def get(self, request_id: int) -> StoredRequest | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        return _row(row) if row else None

    def list(self, *, unit: str | None = None, status: str | None = None) -> list[StoredRequest]:
        query, args = "SELECT * FROM requests WHERE 1=1", []
        if unit is not None:
            query, args = query + " AND unit = ?", [*args, unit]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with self._connect() as db:
            return [_row(r) for r in db.execute(query + " ORDER BY id DESC", args).fetchall()]

    def decide(self, request_id: int, status: str, who: str, reason: str | None) -> bool:
        """Record the decision on a pending request; False when it was no longer pending (decided meanwhile)."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE requests SET status = ?, decided_by = ?, decided_at = ?, reason = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, who, _now(), reason, request_id),
            )
            return cursor.rowcount == 1


def _row(row: sqlite3.Row) -> StoredRequest:
    return StoredRequest(
        id=row["id"],
        unit=row["unit"],
        namespace=row["namespace"],
        fields=json.loads(row["fields"]),
        estimate=json.loads(row["estimate"]),
        submitted_by=row["submitted_by"],
        submitted_at=row["submitted_at"],
        status=row["status"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        reason=row["reason"],
    )
