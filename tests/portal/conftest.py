"""One closed October for every portal test of a module: the closed-form scenario on a real Prometheus,
closed into a SQLite ledger with `chargeback close`'s own function."""

from __future__ import annotations

import pytest

from tests.support.portal import IssuedLedger, close_october
from tests.support.prometheus import ScenarioServer


@pytest.fixture(scope="module")
def issued(priced_prometheus: ScenarioServer, tmp_path_factory: pytest.TempPathFactory) -> IssuedLedger:
    return close_october(tmp_path_factory.mktemp("portal-ledger"), priced_prometheus.url)
