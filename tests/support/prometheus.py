"""A real Prometheus for the chargeback tests, serving the closed-form scenario.

One server per test session: the scenario (cluster dc1, plus a decoy cluster dc2 in the same
Prometheus) is written as OpenMetrics, backfilled with promtool and served on a free loopback
port. A missing `prometheus`/`promtool` fails the tests with the command that installs it:
skipping would hide that the usage queries were never run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from chargeback.errors import LocalPrometheusError
from pool_demo.local_prometheus import LocalPrometheus, backfill, find_binary
from pool_demo.synthetic import Scenario, closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.support.catalog_edit import EXAMPLE_CATALOG

SCENARIO_START = dt.datetime(2026, 10, 1, 0, tzinfo=dt.UTC)
SCENARIO_END = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ScenarioServer:
    """The running Prometheus and the scenario it serves."""

    url: str
    scenario: Scenario
    data_dir: Path


def require_prometheus() -> None:
    """Fail (never skip) when Debian's prometheus is missing."""
    try:
        find_binary("prometheus")
        find_binary("promtool")
    except LocalPrometheusError as e:
        pytest.fail(f"{e}. The chargeback tests need a real Prometheus: run `make test`.", pytrace=False)


def serve_scenario(
    workdir: Path, with_unpriced_storage: bool = True, extra: Sequence[tuple] = (), without: Sequence[str] = ()
) -> Iterator[ScenarioServer]:
    """Backfill the closed-form scenario into `workdir` and serve it until the generator is closed
    (`with_unpriced_storage=False`: without the volumes of storage classes the catalog does not price;
    `extra`: more series as `write_openmetrics` takes them, e.g. a business counter; `without`: metric
    families left out, as an exporter's allow-list would)."""
    require_prometheus()
    scenario = closed_form_scenario("dc1", with_unpriced_storage=with_unpriced_storage)
    source = workdir / "scenario.om"
    write_openmetrics(source, [scenario, other_cluster_scenario("dc2")], extra)
    if without:
        _leave_out(source, set(without))
    data_dir = workdir / "tsdb"
    backfill(source, data_dir)
    with LocalPrometheus(data_dir) as server:
        yield ScenarioServer(url=server.url, scenario=scenario, data_dir=data_dir)


def invoice_args(url: str, out: Path, *extra: str) -> list[str]:
    """`chargeback invoice` for October 2026 of cluster dc1 of the example catalog, against `url`."""
    return ["invoice", "--period", "2026-10", "--prometheus", url, "--catalog", str(EXAMPLE_CATALOG),
            "--out", str(out), "--cluster", "dc1", "--cluster-label", "cluster", *extra]  # fmt: skip


def _leave_out(source: Path, families: set[str]) -> None:
    """Drop the samples and metadata of `families` from an OpenMetrics file."""
    kept = source.with_suffix(".kept")
    with source.open(encoding="utf-8") as lines, kept.open("w", encoding="utf-8") as out:
        for line in lines:
            if line.startswith("# "):  # HELP, TYPE and UNIT name the family third; EOF names none
                words = line.split()
                name = words[2] if len(words) > 2 else ""
            else:
                name = re.split(r"[{ ]", line, maxsplit=1)[0]
            if name not in families:
                out.write(line)
    kept.replace(source)
