"""How long rating, idle detection and report rendering take on a month of many namespaces.

  .venv/bin/python bench/rating_scale.py [--namespaces 200] [--catalog catalog]

Builds a usage frame of N unowned namespaces plus the example catalog's own (cpu, memory, egress,
pods and two storage tiers each, every hour of October 2026, random use below the quota), then
times `charge` (attribute, rate, coverage, idle) and `report_files` (CSV, FOCUS, JSON, HTML) and
prints rows, lines, idle allocations and seconds. No Prometheus: this measures the pure half.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from chargeback.collect.usage import USAGE_SCHEMA, check_usage_frame
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.result import charge
from pool_catalog import load_catalog

RESOURCES = [("cpu", ""), ("memory", ""), ("egress", ""), ("pods", ""), ("storage", "hot"), ("storage", "cold")]


def month_frame(namespaces: list[str], period: Period, seed: int = 1) -> pd.DataFrame:
    hours = pd.date_range(period.start, period.end, freq="h", inclusive="left").as_unit("ns")
    rng = np.random.default_rng(seed)
    parts = []
    for namespace in namespaces:
        for resource, tier in RESOURCES:
            count = len(hours)
            parts.append(
                pd.DataFrame(
                    {
                        "hour": hours,
                        "cluster": "dc1",
                        "namespace": namespace,
                        "resource": resource,
                        "tier": tier,
                        "used": rng.random(count) * 4,
                        "requested": np.nan if resource == "egress" else np.full(count, 4.0),
                        "allocated": np.full(count, 16.0),
                        "coverage": 1.0,
                        "used_peak": np.nan,
                        "requested_peak": np.nan,
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    return check_usage_frame(frame.astype(USAGE_SCHEMA))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=200, help="unowned namespaces besides the catalog's")
    parser.add_argument("--catalog", default="catalog", help="catalog directory")
    args = parser.parse_args()
    catalog = load_catalog(args.catalog)
    period = Period.parse("2026-10")
    names = [f"ns-{i:04d}" for i in range(args.namespaces)] + [ns.name for _, ns in catalog.namespaces()]
    frame = month_frame(names, period)
    started = time.perf_counter()
    chargeback = charge(frame, catalog, period)
    charged = time.perf_counter()
    files = report_files(chargeback)
    rendered = time.perf_counter()
    size = sum(len(content.encode()) for content in files.values())
    print(f"usage rows           {len(frame):>10,}")
    print(f"namespaces           {len(names):>10,}")
    print(f"rated lines          {len(chargeback.lines):>10,}")
    print(f"idle allocations     {len(chargeback.idle):>10,}")
    print(f"charge (s)           {charged - started:>10.2f}")
    print(f"report_files (s)     {rendered - charged:>10.2f}")
    print(f"report bytes         {size:>10,}")


if __name__ == "__main__":
    main()
