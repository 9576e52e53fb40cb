"""The registry of output formats: each format module registers itself once, with the files it writes
and what it needs; `reports.report_files` and `writer.write_reports` run whatever is registered.

Adding a format is one module in `chargeback/outputs/` calling `register(Format(...))`, listed in
`reports.FORMAT_MODULES`. A format either renders text files from the period's documents (`render`)
or turns files other formats staged into more files (`derive`, e.g. PDF from HTML) when asked for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..rate.documents import FinanceSummary, Invoice
from ..rate.result import Chargeback
from .history import PreviousPeriod

Need = Literal["chargeback", "invoices", "summary", "history", "chromium"]


@dataclass(frozen=True)
class Inputs:
    """What the formats of one period are rendered from: each document built once."""

    chargeback: Chargeback
    invoices: tuple[Invoice, ...]
    """The period's invoices (stamped with their ledger issue when a close writes them)."""
    summary: FinanceSummary
    history: PreviousPeriod | None
    month_over_month: dict[str, Any] | None
    """`history.month_over_month` of the invoices against `history` (None: no previous period)."""


@dataclass(frozen=True)
class Derivation:
    """What a derived format gets: the staging folder, the files staged so far, and how to print."""

    staging: Path
    names: list[str]
    out: Path
    chargeback: Chargeback
    chromium: str | None
    dated: dt.datetime | None = None
    """The date printed files carry (None: the end of the period, so reprints are byte-identical)."""


@dataclass(frozen=True)
class Format:
    name: str
    writes: str
    """The files it writes, as a reader would name them (e.g. "usage.csv, line_items.csv, idle.csv")."""
    needs: tuple[Need, ...]
    render: Callable[[Inputs], Mapping[str, str]] | None = None
    """Relative path → content of every file it writes."""
    derive: Callable[[Derivation], list[str]] | None = None
    """Writes files next to staged ones, returns their names; run only when asked for (e.g. --pdf)."""

    def __post_init__(self) -> None:
        if (self.render is None) == (self.derive is None):
            raise ValueError(f"output format {self.name!r} needs exactly one of render and derive")


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format; a name registered twice is a bug (two modules writing the same files)."""
    if fmt.name in FORMATS:
        raise ValueError(f"output format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def rendered() -> list[Format]:
    """The formats every run writes, in registration order."""
    return [fmt for fmt in FORMATS.values() if fmt.render is not None]


def derived() -> list[Format]:
    """The formats written only when asked for."""
    return [fmt for fmt in FORMATS.values() if fmt.derive is not None]
