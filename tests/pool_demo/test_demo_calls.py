"""The demo's capability traffic: Istio series of both reporters, counted by chargeback exactly as generated.

One month of the demo's calls only (no usage series), backfilled with promtool into a real Prometheus;
`check_capability_calls` is the comparison `make demo` runs after billing. The oracle is the traffic
model's own hourly counts (pool_demo.demo_calls.expected_calls), never the series or chargeback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chargeback.period import Period
from pool_catalog import load_catalog
from pool_catalog.models import Catalog
from pool_demo.demo import DemoError, check_capability_calls
from pool_demo.demo_calls import (
    CALL_METRIC,
    DEMO_CALLS,
    call_families,
    counter_samples,
    expected_calls,
    month_traffic,
)
from pool_demo.demo_usage import DEFAULT_SEED, LOCAL_OFFSET_HOURS
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import write_openmetrics
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.prometheus import require_prometheus

OCTOBER = Period(2026, 10)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def october_calls(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[str]:
    """October's demo calls alone, served by a real Prometheus."""
    require_prometheus()
    work = tmp_path_factory.mktemp("demo-calls")
    families = call_families(catalog, OCTOBER.start, OCTOBER.start, OCTOBER.end, DEFAULT_SEED)
    write_openmetrics(work / "calls.om", [], families)
    backfill(work / "calls.om", work / "tsdb")
    with LocalPrometheus(work / "tsdb") as server:
        yield server.url


@pytest.mark.prometheus
def test_collected_calls_equal_the_generated_traffic(october_calls: str, catalog: Catalog) -> None:
    collected = check_capability_calls(catalog, [OCTOBER], october_calls, DEFAULT_SEED)
    assert collected == expected_calls(catalog, OCTOBER.start, [("2026-10", OCTOBER.start, OCTOBER.end)], DEFAULT_SEED)
    assert {key[1:] for key in collected} == {
        ("cs-miniapp", "identity", "default"),
        ("cs-miniapp", "encryption", ""),
        ("cs-miniapp", "credit-scoring", "default"),
        ("cs-miniapp-staging", "identity", "default"),
        ("di-api", "identity", "default"),
        ("di-api", "credit-scoring", "default"),
        ("di-batch", "encryption", ""),
        ("di-batch", "credit-scoring", "bulk"),
        ("es-testbed", "credit-scoring", "default"),
    }
    # The 5xx bursts are collected apart, never billable: two of 600 and one each of 300 and 12,000.
    failed = {key[1:3]: count for key, (_paid, count) in collected.items() if count}
    assert failed == {
        ("cs-miniapp", "credit-scoring"): 1200,
        ("di-api", "identity"): 300,
        ("di-batch", "encryption"): 12000,
    }


@pytest.mark.prometheus
def test_a_demo_whose_traffic_differs_fails_loudly(october_calls: str, catalog: Catalog) -> None:
    with pytest.raises(DemoError) as failure:
        check_capability_calls(catalog, [OCTOBER], october_calls, DEFAULT_SEED + 1)  # another month's noise
    message = str(failure.value)
    assert "the capability calls chargeback collected differ from the generated traffic" in message
    assert "2026-10 cs-miniapp → identity (default): generated " in message


def _traffic(catalog: Catalog) -> dict[tuple[str, str], object]:
    months = month_traffic(catalog, OCTOBER.start, OCTOBER.start, OCTOBER.end, DEFAULT_SEED)
    return {(m.stream.consumer, m.stream.service): m for m in months}


def _local_hours() -> np.ndarray:
    return (np.arange(OCTOBER.hours) + LOCAL_OFFSET_HOURS) % 24


def test_rhythms_logins_peak_in_the_evening_and_the_batch_runs_at_night(catalog: Catalog) -> None:
    traffic = _traffic(catalog)
    hours = _local_hours()
    logins = traffic[("cs-miniapp", "identity")].billable
    by_hour = np.array([logins[hours == h].mean() for h in range(24)])
    assert 18 <= int(by_hour.argmax()) <= 21  # the consumer evening
    assert by_hour.min() > 0  # every hour someone signs in
    nightly = traffic[("di-batch", "kms")].billable
    assert set(hours[nightly > 0].tolist()) == {1, 2}  # 01:00–03:00 local, every night
    assert (nightly[(hours == 1) | (hours == 2)] > 0).all()
    bulk = traffic[("di-batch", "credit-scoring-bulk")].billable
    assert set(hours[bulk > 0].tolist()) == {2, 3}
    bench = traffic[("es-testbed", "credit-scoring")].billable
    assert 4 <= np.count_nonzero(bench) // 2 <= 5  # the weekly bench run: two hours on each Thursday
    assert all(n % 2 == 0 for m in traffic.values() for n in m.billable)  # half in each half hour


def test_both_reporters_a_reset_and_deterministic(catalog: Catalog, tmp_path: Path) -> None:
    families = list(call_families(catalog, OCTOBER.start, OCTOBER.start, OCTOBER.end, DEFAULT_SEED))
    assert {name for name, *_ in families} == {CALL_METRIC}
    reporters = [labels["reporter"] for _n, _t, _h, labels, _s in families]
    assert reporters.count("destination") == reporters.count("source") == len(families) // 2
    # The identity proxy of cs-miniapp's calls restarts once: its destination counter drops, the source's does not.
    drops = {
        labels["reporter"]: int((np.diff(values) < 0).sum())
        for _n, _t, _h, labels, (_times, values) in families
        if labels["source_workload_namespace"] == "cs-miniapp" and labels["destination_service_name"] == "identity"
    }
    assert drops == {"destination": 1, "source": 0}
    # es-testbed calls credit-scoring without declaring it: the demo's undeclared caller.
    testbed = next(ns for _unit, ns in catalog.namespaces() if ns.name == "es-testbed")
    assert "credit-scoring" not in testbed.consumes
    assert any(s.consumer == "es-testbed" and s.service == "credit-scoring" for s in DEMO_CALLS)
    first, second = tmp_path / "a.om", tmp_path / "b.om"
    for path in (first, second):
        write_openmetrics(path, [], call_families(catalog, OCTOBER.start, OCTOBER.start, OCTOBER.end, DEFAULT_SEED))
    assert first.read_bytes() == second.read_bytes()


def test_counter_samples_restart_from_zero_right_after_a_scrape() -> None:
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    times, values = counter_samples(np.array([10, 20, 30]), start, restarts=(3,))
    assert (times - start.timestamp()).tolist() == [11.0, 1811.0, 3611.0, 5411.0, 7211.0, 9011.0]
    # Carried 30 from before; +5, +5, then restarted: 10 since the scrape before, +10, +15.
    assert values.tolist() == [30.0, 35.0, 40.0, 10.0, 20.0, 35.0]


def test_counter_samples_refuse_a_restart_prometheus_could_not_extrapolate() -> None:
    # Restarted with 1 call before the busy hour's first scrape, then 500 in its first half: `increase` would cut
    # its extrapolation at zero and count fewer calls than the hour had.
    with pytest.raises(ValueError, match="too close to zero"):
        counter_samples(np.array([2, 1000]), dt.datetime(2026, 10, 1, tzinfo=dt.UTC), restarts=(2,))
