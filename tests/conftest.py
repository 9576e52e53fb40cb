"""Shared fixtures. `scenario_prometheus` is session-scoped: one server serves every chargeback test;
`priced_prometheus` is module-scoped, as it was when it lived in the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.support.prometheus import ScenarioServer, require_prometheus, serve_scenario


@pytest.fixture(scope="session")
def scenario_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    """Debian's prometheus on 127.0.0.1 serving the closed-form scenario (pool_demo.synthetic)."""
    yield from serve_scenario(tmp_path_factory.mktemp("prometheus"))


@pytest.fixture(scope="module")
def priced_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    """The closed-form scenario without its unpriced storage classes (and the decoy cluster dc2)."""
    require_prometheus()
    workdir = tmp_path_factory.mktemp("priced-prometheus")
    scenario = closed_form_scenario("dc1", with_unpriced_storage=False)
    write_openmetrics(workdir / "scenario.om", [scenario, other_cluster_scenario("dc2")])
    backfill(workdir / "scenario.om", workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as server:
        yield ScenarioServer(url=server.url, scenario=scenario, data_dir=workdir / "tsdb")
