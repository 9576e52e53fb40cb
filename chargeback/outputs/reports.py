"""The report set of one period: every registered format (`formats`) rendered from the period's
documents, built once. `writer.write_reports` stages and publishes what this returns.

The formats: csv (usage.csv, line_items.csv, idle.csv), focus (focus.csv),
json (invoices/<unit>.json), html (invoices/<unit>.html, finance-summary.html, with charts and month
over month), pdf (each HTML printed, when asked for). The same data gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..heap import give_back
from ..rate.documents import IssueStamp
from ..rate.result import Chargeback
from . import csv_tables, focus, html, invoice_json, pdf
from .formats import Inputs, rendered
from .history import PreviousPeriod, default_previous_dir, month_over_month, read_previous

FORMAT_MODULES = (csv_tables, focus, invoice_json, html, pdf)
"""Importing a format module registers it; a new format is added here."""


def report_files(
    chargeback: Chargeback, previous: PreviousPeriod | None = None, issue: dict[str, Any] | None = None
) -> dict[str, str]:
    """Relative path → file content of every report of the period (`previous`: month over month; `issue`: the
    ledger issue the invoices belong to, printed on each as its fingerprint)."""
    invoices = chargeback.invoices
    if issue is not None:
        stamp = IssueStamp.model_validate(issue)
        invoices = tuple(invoice.model_copy(update={"issue": stamp}) for invoice in invoices)
    inputs = Inputs(
        chargeback=chargeback,
        invoices=invoices,
        summary=chargeback.finance_summary,
        history=previous,
        month_over_month=month_over_month(previous, invoices) if previous else None,
    )
    files: dict[str, str] = {}
    for fmt in rendered():
        assert fmt.render is not None
        for name, content in fmt.render(inputs).items():
            if name in files:
                raise ValueError(f"output formats write {name} twice (second: {fmt.name}); this is a bug")
            files[name] = content
        give_back()  # a format's working arrays (some read the hourly usage), before the next one starts
    return files


def previous_period(chargeback: Chargeback, out: Path, previous: Path | None) -> PreviousPeriod | None:
    """The previous period's totals: from `previous` if given, else the sibling directory named after it."""
    if previous is not None:
        return read_previous(Path(previous), chargeback.period, chargeback.currency, explicit=True)
    directory = default_previous_dir(out.resolve(), chargeback.period)
    if directory is None:
        return None
    return read_previous(directory, chargeback.period, chargeback.currency, explicit=False)
