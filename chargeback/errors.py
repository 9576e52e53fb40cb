"""Errors of the chargeback package: every one says what went wrong, where, and how to fix it."""

from __future__ import annotations

from pool_catalog.errors import UserError


class ChargebackError(UserError):
    """Base of every chargeback error; the command line prints it and exits with status 2."""


class PeriodError(ChargebackError):
    """A billing period that is not a calendar month written YYYY-MM."""


class RatingError(ChargebackError):
    """Usage cannot be priced: a missing price, an unknown storage class, a malformed frame."""


class OutputError(ChargebackError):
    """Reports could not be written to the output directory."""


class PrometheusError(ChargebackError):
    """A Prometheus query failed: the message names the query, the server and what to check."""

    def __init__(self, message: str, *, query: str = "", server: str = "", hint: str = "") -> None:
        self.query = query
        self.server = server
        self.hint = hint
        text = message
        if server:
            text += f" (server {server})"
        if query:
            text += f"\n  query: {query}"
        if hint:
            text += f"\n  fix: {hint}"
        super().__init__(text)


class PrometheusUnreachableError(PrometheusError):
    """Connection refused, DNS failure or timeout after every retry."""


class PrometheusQueryError(PrometheusError):
    """Prometheus answered with an error status (bad query, limits, server error)."""


class PrometheusResponseError(PrometheusError):
    """The answer is not the JSON the HTTP API documents (a proxy's page, a truncated body …)."""


class DataContractError(ChargebackError):
    """The doctor found data that would make figures silently wrong; the run is refused (see `findings`)."""

    def __init__(self, message: str, findings: tuple[object, ...] = ()) -> None:
        self.findings = findings
        super().__init__(message)


class UsageDataError(ChargebackError):
    """A usage frame breaks its declared schema, or series cannot be turned into one."""


class LocalPrometheusError(ChargebackError):
    """The local Prometheus of the tests and the demo could not be built or started."""


class NorthStarError(ChargebackError):
    """A unit's north-star query cannot be measured (refused by Prometheus, several series, not a volume)."""


class HistoryError(ChargebackError):
    """The previous period's invoices (for the month-over-month view) cannot be read or compared."""


class PdfError(ChargebackError):
    """Chromium is missing or could not print a report to PDF."""


class LedgerError(ChargebackError):
    """The ledger of issued documents cannot be opened, read or written, or refuses a change."""


class LedgerBusyError(LedgerError):
    """Another `chargeback close` holds the ledger; nothing was issued by this run."""
