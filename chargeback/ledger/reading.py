"""Closed months read back from the ledger for the other reports: the totals in force of a month (invoice
plus its corrections) for the finance summary's month over month, and as metrics for the exporter."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection

from pool_catalog.pricing import round_money

from ..errors import ChargebackError
from ..outputs.history import PreviousPeriod
from ..period import Period
from ..rate.invoices import text
from .documents import month_in_force
from .store import Issue, Ledger

log = logging.getLogger(__name__)


def previous_from_ledger(
    book: Ledger, period: Period, currency: str, connection: Connection | None = None
) -> PreviousPeriod | None:
    """The month before `period` as closed in the ledger (totals in force), or None when it is not closed."""
    previous = period.previous.label
    issues = book.issues(period=previous, connection=connection, files=False)
    if not issues:
        return None
    states = month_in_force(issues)
    names = {unit: unit for unit in states}
    for issue in issues:
        for document in issue.documents:
            unit = json.loads(document.content).get("business_unit") or {}
            names[document.business_unit] = unit.get("display_name", document.business_unit)
    currencies = {state.currency for state in states.values()}
    if currencies - {currency}:
        raise ChargebackError(
            f"{previous} is closed in ledger {book.name} in {', '.join(sorted(currencies))} but this period is billed "
            f"in {currency}: totals in different currencies cannot be compared"
        )
    return PreviousPeriod(
        period=previous,
        directory=None,
        currency=currency,
        totals={unit: round_money(state.total, currency) for unit, state in states.items()},
        names=names,
    )


CLOSED_METRICS: dict[str, str] = {
    "closed_month_cost": "Total in force of a closed month per business unit (its invoice plus correction notes), "
    "from the ledger, in the currency label.",
    "closed_month_documents": "Documents issued for a closed month per business unit (the invoice and its notes).",
    "ledger_last_read_success": "1 if the last scrape read the ledger, 0 if it could not (the log says why).",
}
"""Series of the closed-months collector (without the resource_pool_ prefix) and their HELP texts."""


class ClosedMonthsCollector(Collector):
    """Closed months of the ledger as gauges, read at every scrape (the ledger is the record, not a cache)."""

    def __init__(self, ledger: Ledger, months: int = 13) -> None:
        self.ledger = ledger
        self.months = months

    def collect(self) -> Iterator[Metric]:
        cost = GaugeMetricFamily(
            "resource_pool_closed_month_cost",
            CLOSED_METRICS["closed_month_cost"],
            labels=["business_unit", "period", "currency"],
        )
        documents = GaugeMetricFamily(
            "resource_pool_closed_month_documents",
            CLOSED_METRICS["closed_month_documents"],
            labels=["business_unit", "period"],
        )
        ok = GaugeMetricFamily("resource_pool_ledger_last_read_success", CLOSED_METRICS["ledger_last_read_success"])
        try:
            issues = self.ledger.issues(files=False)
        except ChargebackError as e:
            log.error("cannot read the ledger: %s", e)
            ok.add_metric([], 0)
            yield ok
            return
        by_period: dict[str, list[Issue]] = {}
        for issue in issues:
            by_period.setdefault(issue.period, []).append(issue)
        for period in sorted(by_period)[-self.months :]:
            for unit, state in month_in_force(by_period[period]).items():
                total = round_money(state.total, state.currency)
                cost.add_metric([unit, period, state.currency], float(Decimal(text(total))))
                documents.add_metric([unit, period], len(state.chain))
        ok.add_metric([], 1)
        yield cost
        yield documents
        yield ok
