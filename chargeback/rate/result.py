"""One period's chargeback, computed from a usage frame: attributed usage, rated lines, coverage, idle.

`charge` is pure (no Prometheus, no files), so tests, the command line, the demo and the exporter
all compute the same figures from the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

from pool_catalog.models import BillingMode, Catalog

from ..collect.findings import Finding
from ..collect.usage import empty_estimate_frame
from ..heap import give_back
from ..period import Period
from .capabilities import CAPABILITY_LINE_SCHEMA, provider_costs, rate_calls
from .frames import check_frame, empty_frame
from .idle import find_idle
from .rating import attribute, billing_mode_of, coverage, rate

if TYPE_CHECKING:
    from .documents import FinanceSummary, Invoice
    from .north_star import Measurement


@dataclass(frozen=True)
class Chargeback:
    """Everything the reports of one period are made from."""

    period: Period
    catalog: Catalog
    billing_mode: BillingMode
    usage: pd.DataFrame
    """The usage frame with business_unit, cost_center and shared (rating.ATTRIBUTED_SCHEMA)."""
    lines: pd.DataFrame
    """Rated lines (rating.LINE_SCHEMA), shared namespaces already split."""
    coverage: pd.DataFrame
    """Hours seen and covered per namespace (rating.COVERAGE_SCHEMA)."""
    idle: pd.DataFrame
    """Flagged allocations (idle.IDLE_SCHEMA)."""
    estimates: pd.DataFrame = field(default_factory=empty_estimate_frame)
    """Figures that are estimates or gaps, per namespace (usage.ESTIMATE_SCHEMA): said on the invoice."""
    north_star: dict[str, Measurement] | None = None
    """Unit id → its north-star volume this period; None when not measured (no Prometheus at hand)."""
    findings: tuple[Finding, ...] = ()
    """What the doctor found about the data (empty: nothing); reports print those touching each invoice."""
    capability_lines: pd.DataFrame = field(default_factory=lambda: empty_frame(CAPABILITY_LINE_SCHEMA))
    """Rated capability calls (capabilities.CAPABILITY_LINE_SCHEMA): what consumers pay providers; empty: no calls."""

    def __post_init__(self) -> None:
        check_frame(self.capability_lines, CAPABILITY_LINE_SCHEMA, "chargeback (capability lines)")

    @property
    def currency(self) -> str:
        return self.catalog.rates.currency

    # The documents are built once per period and shared by every consumer (reports, command line,
    # exporter, demo), so they cannot disagree; the frames above are never changed after `charge`.
    @cached_property
    def invoices(self) -> tuple[Invoice, ...]:
        """An invoice per catalog unit, plus the unallocated statement if anything is (`invoices.build_invoices`)."""
        from .invoices import build_invoices

        return tuple(build_invoices(self))

    @cached_property
    def finance_summary(self) -> FinanceSummary:
        """All units side by side, from `invoices`."""
        from .invoices import finance_summary

        return finance_summary(self, self.invoices)


def charge(
    usage: pd.DataFrame,
    catalog: Catalog,
    period: Period,
    billing_mode: str | BillingMode | None = None,
    volumes: pd.DataFrame | None = None,
    estimates: pd.DataFrame | None = None,
    findings: tuple[Finding, ...] = (),
    calls: pd.DataFrame | None = None,
) -> Chargeback:
    """Attribute, rate and judge one period's usage frame (as `collect_usage` returns it, with its
    per-PVC `volumes` detail and its `estimates` when there are, and the doctor's `findings` about its data);
    `calls` (collect.calls.CALLS_SCHEMA) are rated with the provider namespaces' costs of these rated lines."""
    mode = billing_mode_of(catalog.rates, billing_mode)
    attributed = attribute(usage, catalog, period)
    # Each stage's row-sized working arrays are freed before the next starts; give_back returns their pages.
    lines = rate(attributed, catalog, period, mode)
    give_back()
    idle = find_idle(attributed, catalog, period, volumes, mode)
    give_back()
    capability_lines = (
        empty_frame(CAPABILITY_LINE_SCHEMA)
        if calls is None
        else rate_calls(calls, catalog, period, provider_costs(lines))
    )
    return Chargeback(
        period=period,
        catalog=catalog,
        billing_mode=mode,
        usage=attributed,
        lines=lines,
        coverage=coverage(attributed, period),
        idle=idle,
        estimates=empty_estimate_frame() if estimates is None else estimates,
        findings=tuple(findings),
        capability_lines=capability_lines,
    )
