"""A refused `serve` refresh says what serve does, not to pass --allow-incomplete (a flag serve does not have).

Run against a real Prometheus holding no data, so the doctor's "no data" finding refuses the refresh.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import typer.main

from chargeback.cli import app
from chargeback.collect.prometheus import PrometheusSettings
from chargeback.exporter import ExporterSource, MonthToDateCollector
from pool_demo.local_prometheus import LocalPrometheus
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.prometheus import require_prometheus

pytestmark = pytest.mark.prometheus


def test_a_refused_refresh_names_no_flag_serve_lacks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    require_prometheus()
    serve_flags = {
        name
        for param in typer.main.get_command(app).commands["serve"].params  # type: ignore[attr-defined]
        for name in param.opts
    }
    assert "--allow-incomplete" not in serve_flags
    (tmp_path / "tsdb").mkdir()
    with LocalPrometheus(tmp_path / "tsdb") as server:
        source = ExporterSource(EXAMPLE_CATALOG, PrometheusSettings(url=server.url, retries=0))
        collector = MonthToDateCollector(source, clock=lambda: dt.datetime(2026, 10, 15, 12, tzinfo=dt.UTC))
        with caplog.at_level(logging.ERROR, logger="chargeback"):
            assert not collector.refresh()
    [message] = [r.getMessage() for r in caplog.records if "refresh failed" in r.getMessage()]
    assert "refusing to bill 2026-10" in message
    assert "serve publishes no figures from such data" in message
    assert "--allow-incomplete" not in message
    named = {word.strip("(),;:.'`") for word in message.split() if word.startswith(("--", "(--", "`--"))}
    assert named <= serve_flags, named - serve_flags
