"""The OpenMetrics writer and the scenario model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pool_demo.synthetic import (
    Container,
    OpenMetricsWriter,
    Pod,
    Scenario,
    at,
    closed_form_scenario,
    expected_usage,
)


def test_writer_emits_families_once_and_ends_with_eof(tmp_path: Path) -> None:
    path = tmp_path / "x.om"
    with OpenMetricsWriter(path) as writer:
        writer.write_series("jobs_total", "counter", "Jobs.", {"ns": 'a"b'}, (np.array([1.0, 2.5]), np.array([0, 1.5])))
        writer.write_series("jobs_total", "counter", "Jobs.", {"ns": "c"}, [(1.0, 7.0)])
        writer.write_series("temp", "gauge", "Temp.", {}, (np.array([1.0, 2.0]), np.array([3.0, 3.0])))
    assert path.read_text().splitlines() == [
        "# HELP jobs Jobs.",
        "# TYPE jobs counter",
        'jobs_total{ns="a\\"b"} 0 1.000',
        'jobs_total{ns="a\\"b"} 1.5 2.500',
        'jobs_total{ns="c"} 7 1.000',
        "# HELP temp Temp.",
        "# TYPE temp gauge",
        "temp 3 1.000",
        "temp 3 2.000",
        "# EOF",
    ]
    assert (writer.samples_written, writer.series_written) == (5, 3)


def test_writer_refuses_what_promtool_would_refuse(tmp_path: Path) -> None:
    with OpenMetricsWriter(tmp_path / "x.om") as writer:
        writer.write_series("a", "gauge", "A.", {}, [(1.0, 1.0)])
        writer.write_series("b", "gauge", "B.", {}, [(1.0, 1.0)])
        with pytest.raises(ValueError, match="family 'a' was already written"):
            writer.write_series("a", "gauge", "A.", {"x": "y"}, [(1.0, 1.0)])
        with pytest.raises(ValueError, match="strictly increasing time order"):
            writer.write_series("b", "gauge", "B.", {"x": "z"}, [(2.0, 1.0), (1.0, 1.0)])
        with pytest.raises(ValueError, match="must end in _total"):
            writer.write_series("c", "counter", "C.", {}, [(1.0, 1.0)])


def test_scrape_grid_has_its_phase_and_skips_gaps() -> None:
    scenario = closed_form_scenario()
    cadvisor = scenario.scrape_times(scenario.cadvisor)
    assert set((cadvisor % 60).tolist()) == {7.0, 37.0}
    kube_state = scenario.scrape_times(scenario.kube_state)
    assert kube_state[0] == at("00:00:00").timestamp()
    in_gap = (kube_state >= at("05:00:00").timestamp()) & (kube_state < at("06:00:00").timestamp())
    assert not in_gap.any()
    assert len(kube_state) == 8 * 120 - 80 - 120  # 40 minutes and a whole hour without scrapes


def test_counters_restart_from_zero() -> None:
    scenario = closed_form_scenario()
    pod = next(p for p in scenario.pods if p.name == "etl-0")
    times = np.array([at("03:15:07").timestamp(), at("03:15:37").timestamp()])
    before, after = scenario._cpu_counter(pod, pod.containers[0], times)
    assert before == 4 * (3 * 3600 + 15 * 60 + 7)
    assert after == 4 * 15


def test_varying_load_integrates_between_samples() -> None:
    container = Container("c", cpu_cores=2, memory_bytes=1, restarts=(at("00:01:00"),))
    pod = Pod("n", "p", (container,), load=lambda t: np.full_like(t, 0.5))
    scenario = Scenario(start=at("00:00:00"), end=at("00:02:00"), pods=[pod])
    times = scenario.scrape_times(scenario.cadvisor)
    values = scenario._cpu_counter(pod, container, times)
    # 2 cores at half load = 1 core-second per second, counted again from the restart at 00:01:00.
    assert values.tolist() == [7.0, 37.0, 7.0, 37.0]


def test_expected_usage_is_closed_form() -> None:
    expected = expected_usage(closed_form_scenario(), {"pool-cold": "cold"})
    assert expected[(at("03:00:00"), "di-batch", "cpu", "")]["used"] == pytest.approx(4 - 4 * 15 / 3600)
    assert expected[(at("01:00:00"), "di-batch", "storage", "cold")]["used"] == 600
    assert (at("05:00:00"), "di-api", "cpu", "") not in expected
