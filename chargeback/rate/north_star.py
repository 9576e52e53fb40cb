"""Cost per unit of business: each unit's north-star metric (orders, active users …) measured over the
billed period, its cost per unit of it, and month over month whether cost grew faster than the business.

A unit declares `north_star: {name, unit, query}` in its catalog file; `query` is PromQL whose `$__range`
stands for the period. It is evaluated once, at the period's end − 1 ms, over a range that covers exactly
[start, end) as the hourly usage queries do: the period's length − 1 ms on Prometheus 2 (closed ranges), the
period's length on Prometheus 3 (left-open ranges; with 2's range the counter's sample at the start is lost).
A query Prometheus refuses, or that returns several series, is an error naming the unit's file; a query
that returns nothing leaves the figure out with a warning — never a cost per zero units.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from pool_catalog.files import unit_file
from pool_catalog.models import BusinessUnit, Catalog

from ..collect.prometheus import PrometheusClient
from ..collect.promql import covering_range
from ..errors import NorthStarError, PrometheusQueryError
from ..period import Period
from .invoices import ratio, text

RANGE = "$__range"
VOLUME_QUANTUM = Decimal("0.01")
COST_PER_UNIT_QUANTUM = Decimal("0.0001")
"""Cost per unit of business is often a fraction of a cent (0.0421 CNY per order): four places."""


@dataclass(frozen=True)
class Measurement:
    """A unit's north-star volume over the period; `volume` None when the query returned no series."""

    unit_id: str
    query: str
    volume: Decimal | None


def period_query(query: str, period: Period, version: str | None = None) -> tuple[str, dt.datetime]:
    """The query with `$__range` set to the period on a server of `version`, and the time to evaluate it at."""
    window = covering_range((period.end - period.start).total_seconds(), version)
    return query.replace(RANGE, window), period.end - dt.timedelta(milliseconds=1)


def _where(catalog: Catalog, unit: BusinessUnit) -> str:
    return f"{unit_file(Path(catalog.root), unit.id)}: north_star.query"


def measure(client: PrometheusClient, catalog: Catalog, period: Period) -> dict[str, Measurement]:
    """The north-star volume of every unit that declares one (unit id → measurement)."""
    result: dict[str, Measurement] = {}
    version = client.build_version()
    for unit in catalog.units:
        if unit.north_star is None:
            continue
        query, at = period_query(unit.north_star.query, period, version)
        try:
            answer = client.query(query, at)
        except PrometheusQueryError as e:
            raise NorthStarError(
                f"{_where(catalog, unit)}: Prometheus refused the query: {e}\n  fix: correct the PromQL in that file"
            ) from e
        if len(answer.series) > 1:
            raise NorthStarError(
                f"{_where(catalog, unit)}: the query returned {len(answer.series)} series for {period.label}; "
                "it must give one number: wrap it in sum(...)"
            )
        volume = None
        if answer.series:
            value = float(answer.series[0].values[-1])
            if not math.isfinite(value) or value < 0:
                raise NorthStarError(
                    f"{_where(catalog, unit)}: the query gave {value} for {period.label}, not a volume "
                    "(a count of orders, users …): check the metric and the aggregation"
                )
            volume = Decimal(repr(value)).quantize(VOLUME_QUANTUM, rounding=ROUND_HALF_EVEN)
        result[unit.id] = Measurement(unit.id, query, volume)
    return result


def missing_warnings(measurements: dict[str, Measurement], period: Period) -> list[str]:
    """One warning per unit whose north-star query found no data this period."""
    return [
        f"north star of {m.unit_id}: no series for {period.label} (query {m.query}); cost per unit is left out"
        for m in measurements.values()
        if m.volume is None
    ]


def cost_per_unit(cost: Decimal, volume: Decimal | None) -> Decimal | None:
    if volume is None or volume == 0:
        return None
    return (cost / volume).quantize(COST_PER_UNIT_QUANTUM, rounding=ROUND_HALF_EVEN)


def invoice_entry(unit: BusinessUnit, measurement: Measurement, total: Decimal) -> dict[str, Any]:
    """The `north_star` block of an invoice."""
    assert unit.north_star is not None
    per_unit = cost_per_unit(total, measurement.volume)
    return {
        "name": unit.north_star.name,
        "unit": unit.north_star.unit,
        "query": measurement.query,
        "volume": None if measurement.volume is None else text(measurement.volume),
        "cost_per_unit": None if per_unit is None else text(per_unit),
    }


def change(
    previous_cost: Decimal, previous_volume: Decimal | None, cost: Decimal, volume: Decimal | None
) -> dict[str, Any]:
    """Month over month: cost, volume and cost per unit, and whether cost grew faster than the business."""
    cost_share = ratio(cost - previous_cost, previous_cost)
    volume_share = None
    if volume is not None and previous_volume is not None:
        volume_share = ratio(volume - previous_volume, previous_volume)
    before, now = cost_per_unit(previous_cost, previous_volume), cost_per_unit(cost, volume)
    per_unit_share = None if before is None or now is None else ratio(now - before, before)
    faster = cost_share is not None and volume_share is not None and cost_share > volume_share
    return {
        "previous_volume": None if previous_volume is None else text(previous_volume),
        "previous_cost_per_unit": None if before is None else text(before),
        "cost_change_share": None if cost_share is None else text(cost_share),
        "volume_change_share": None if volume_share is None else text(volume_share),
        "cost_per_unit_change_share": None if per_unit_share is None else text(per_unit_share),
        "cost_grew_faster": faster,
    }
