"""Shared fixtures. The Prometheus fixture is session-scoped: one server serves every chargeback test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prometheus import ScenarioServer, serve_scenario


@pytest.fixture(scope="session")
def scenario_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    """Debian's prometheus on 127.0.0.1 serving the closed-form scenario (pool_demo.synthetic)."""
    yield from serve_scenario(tmp_path_factory.mktemp("prometheus"))
