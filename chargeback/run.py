"""One chargeback run: period → collect usage from Prometheus → rate → idle → write reports.

The command line, the demo and the exporter all call `run_period`, so they bill the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from pool_catalog import Catalog, load_catalog
from pool_catalog.models import BillingMode

from .collect.calls import collect_calls, empty_calls_frame
from .collect.doctor import check_partial, examine
from .collect.findings import Finding, errors_of, refusal_text, sort_findings
from .collect.prometheus import PrometheusClient, PrometheusSettings
from .collect.promql import LabelMatcher
from .collect.usage import (
    collect_usage,
    empty_estimate_frame,
    empty_usage_frame,
    empty_volume_frame,
    union_text_columns,
)
from .errors import ChargebackError, DataContractError
from .outputs.focus import FOCUS_VERSION
from .outputs.writer import write_reports
from .period import Period
from .rate import north_star
from .rate.result import Chargeback, charge


@dataclass(frozen=True)
class PeriodRun:
    """What a run computed and wrote."""

    chargeback: Chargeback
    warnings: list[str] = field(default_factory=list)
    """Prometheus warnings (partial answers) and data gaps, worth showing to the user."""
    written: list[Path] = field(default_factory=list)
    """Report files written (empty when no output directory was given)."""
    queries: dict[str, dict[str, str]] = field(default_factory=dict)
    """Cluster → query name → the exact PromQL run."""
    findings: list[Finding] = field(default_factory=list)
    """What the doctor found about the data, every severity (the reports print errors and warnings)."""


def clusters_to_collect(catalog: Catalog, cluster: str | None, cluster_label: str | None) -> list[str]:
    """The clusters of this run. Several clusters in one Prometheus need a label telling them apart."""
    if cluster is not None:
        if catalog.pool.cluster(cluster) is None:
            names = ", ".join(c.name for c in catalog.pool.clusters)
            raise ChargebackError(f"--cluster {cluster!r} is not in pool.yaml (clusters: {names})")
        return [cluster]
    names = [c.name for c in catalog.pool.clusters]
    if len(names) > 1 and cluster_label is None:
        raise ChargebackError(
            f"pool.yaml has {len(names)} clusters ({', '.join(names)}): pass --cluster-label (the series label "
            "naming the cluster, e.g. cluster) if one Prometheus holds them all, or run once per cluster with --cluster"
        )
    return names


@dataclass(frozen=True)
class Collected:
    """Usage of every cluster of a run, as Prometheus answered it."""

    usage: pd.DataFrame
    """usage.USAGE_SCHEMA, all clusters."""
    volumes: pd.DataFrame
    """usage.VOLUME_SCHEMA: per-PVC storage detail, all clusters."""
    estimates: pd.DataFrame
    """usage.ESTIMATE_SCHEMA: figures that are estimates or gaps, all clusters."""
    warnings: list[str]
    queries: dict[str, dict[str, str]]
    """Cluster → query name → the exact PromQL run."""
    calls: pd.DataFrame = field(default_factory=empty_calls_frame)
    """calls.CALLS_SCHEMA: capability calls of every cluster."""


def _union(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    # Each frame was checked by collect_usage; clusters differ, so their union is a valid frame too.
    non_empty = [f for f in frames if len(f)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else empty


def collect_period(
    period: Period,
    catalog: Catalog,
    client: PrometheusClient,
    clusters: Sequence[str],
    cluster_label: str | None = None,
    matchers: Sequence[LabelMatcher] = (),
    strict: bool = True,
    calls: Mapping[str, pd.DataFrame] | None = None,
) -> Collected:
    """The usage and capability calls of every cluster for the period, with warnings and the queries run
    (`strict` off: answers that cannot give right figures are billed as they are, with a warning; `calls`:
    the calls frames the doctor already collected, per cluster — other clusters' calls are queried here)."""
    results, warnings, queries, call_frames = [], [], {}, []
    known = calls or {}
    for cluster in clusters:
        selectors = [*matchers, LabelMatcher(cluster_label, cluster)] if cluster_label else list(matchers)
        result = collect_usage(client, catalog, period.start, period.end, cluster, selectors, strict=strict)
        results.append(result)
        frame = known.get(cluster)
        call_frames.append(frame if frame is not None else collect_calls(client, catalog, period, cluster, selectors))
        warnings.extend(f"{cluster}: {w}" for w in result.warnings)
        queries[cluster] = result.queries
    return Collected(
        # Clusters name different namespaces: categories that differ concatenate as plain text, made categorical again.
        usage=union_text_columns(_union([r.frame for r in results], empty_usage_frame())),
        volumes=_union([r.volumes for r in results], empty_volume_frame()),
        estimates=_union([r.estimates for r in results], empty_estimate_frame()),
        warnings=warnings,
        queries=queries,
        # Clusters are told apart by the frame's cluster column; each frame was checked when collected.
        calls=_union(call_frames, empty_calls_frame()),
    )


def run_period(
    period: str | Period,
    catalog: Catalog | Path | str,
    prometheus: PrometheusSettings | str,
    out: Path | str | None = None,
    *,
    cluster: str | None = None,
    cluster_label: str | None = None,
    matchers: Sequence[LabelMatcher | str] = (),
    billing_mode: str | BillingMode | None = None,
    previous: Path | None = None,
    pdf: bool = False,
    focus_version: str = FOCUS_VERSION,
    allow_incomplete: bool = False,
    now: dt.datetime | None = None,
) -> PeriodRun:
    """Bill one month: check the data (`doctor.examine`, which also counts the capability calls), collect,
    rate (resources, then capability calls with the provider namespaces' costs), judge idle allocations and
    (if `out`) write every report (`previous`: the previous period's output directory for month over
    month; `pdf`: print HTML to PDF; `focus_version`: of focus.csv).

    Error findings (no data, a period not over at `now`, a required series missing, a partial answer …)
    refuse the run with DataContractError unless `allow_incomplete`; then they are printed, with the
    warnings, on every invoice they touch. Raises ChargebackError or CatalogError with a message for
    the user; writes nothing on failure.
    """
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(Path(catalog))
    # The catalog's billing zone decides which instants "2026-10" covers.
    period = (period if isinstance(period, Period) else Period.parse(period)).in_zone(catalog.pool.billing.time_zone)
    settings = prometheus if isinstance(prometheus, PrometheusSettings) else PrometheusSettings(url=prometheus)
    selectors = [m if isinstance(m, LabelMatcher) else LabelMatcher.parse(m) for m in matchers]
    clusters = clusters_to_collect(catalog, cluster, cluster_label)
    with PrometheusClient(settings) as client:
        diagnosis = examine(client, catalog, period, clusters, cluster_label, selectors, now)
        findings = diagnosis.findings
        if errors_of(findings) and not allow_incomplete:
            raise DataContractError(refusal_text(findings, period.label), tuple(findings))
        checked = len(client.warnings_seen)
        collected = collect_period(
            period, catalog, client, clusters, cluster_label, selectors, not allow_incomplete, diagnosis.calls
        )
        # A partial answer to the usage queries themselves (the doctor's own were complete).
        late = client.warnings_seen[checked:]
        business = north_star.measure(client, catalog, period) if any(u.north_star for u in catalog.units) else None
    if late:
        findings = sort_findings([*findings, *(f for c in clusters for f in check_partial(late, c))])
        if not allow_incomplete:
            raise DataContractError(refusal_text(findings, period.label), tuple(findings))
    chargeback = charge(
        collected.usage,
        catalog,
        period,
        billing_mode,
        collected.volumes,
        collected.estimates,
        findings=tuple(findings),
        calls=collected.calls,
    )
    if business is not None:
        chargeback = replace(chargeback, north_star=business)
        collected.warnings.extend(north_star.missing_warnings(business, period))
    written = (
        write_reports(chargeback, Path(out), previous=previous, pdf=pdf, focus_version=focus_version)
        if out is not None
        else []
    )
    return PeriodRun(
        chargeback=chargeback,
        warnings=collected.warnings,
        written=written,
        queries=collected.queries,
        findings=findings,
    )
