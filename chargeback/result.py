"""One period's chargeback, computed from a usage frame: attributed usage, rated lines, coverage, idle.

`charge` is pure (no Prometheus, no files), so tests, the command line, the demo and the exporter
all compute the same figures from the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from infra.catalog.models import BillingMode, Catalog

from .findings import Finding
from .idle import find_idle
from .period import Period
from .rating import attribute, billing_mode_of, coverage, rate


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
    findings: tuple[Finding, ...] = ()
    """What the doctor found about the data (empty: nothing); reports print those touching each invoice."""

    @property
    def currency(self) -> str:
        return self.catalog.rates.currency


def charge(
    usage: pd.DataFrame,
    catalog: Catalog,
    period: Period,
    billing_mode: str | BillingMode | None = None,
    volumes: pd.DataFrame | None = None,
    findings: tuple[Finding, ...] = (),
) -> Chargeback:
    """Attribute, rate and judge one period's usage frame (as `collect_usage` returns it, with its
    per-PVC `volumes` detail when there is one, and the doctor's `findings` about its data)."""
    mode = billing_mode_of(catalog.rates, billing_mode)
    attributed = attribute(usage, catalog, period)
    return Chargeback(
        period=period,
        catalog=catalog,
        billing_mode=mode,
        usage=attributed,
        lines=rate(attributed, catalog, period, mode),
        coverage=coverage(attributed, period),
        idle=find_idle(attributed, catalog, period, volumes),
        findings=tuple(findings),
    )
