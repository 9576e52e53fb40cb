"""Errors raised while reading or checking a catalog.

Every problem is a `Finding` that names the file, the field (dotted path, with the line
when known) and how to fix it, so a reviewer can act on it without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in the catalog."""

    file: str
    field: str
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text


class UserError(Exception):
    """Base of every error a command line reports as a message (exit status 2) instead of a traceback:
    catalog problems here, `infra.errors.PoolError` and `chargeback.errors.ChargebackError`. Each one says
    what went wrong, where, and how to fix it; anything else that escapes a command is a bug and keeps its
    traceback."""


class CatalogError(UserError):
    """The catalog cannot be used; `findings` lists every error found, not only the first."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = sorted(findings, key=lambda f: (f.file, f.line or 0, f.field, f.message))
        lines = [str(f) for f in self.findings]
        noun = "problem" if len(lines) == 1 else "problems"
        super().__init__(f"catalog has {len(lines)} {noun}:\n  " + "\n  ".join(lines))
