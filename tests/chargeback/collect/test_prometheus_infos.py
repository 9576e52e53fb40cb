"""Prometheus 3 `infos` are shown, never treated as warnings: billing goes on.

The Prometheus API returns `warnings` ("errors that do not inhibit the request execution": a partial answer)
and, since 2.52, `infos` ("info-level annotations … for potential query issues that may or may not be false
positives"), https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview, web/api/v1/api.go
`Response.Infos`. The text below is promql/annotations.go's PossibleNonCounterInfo as Prometheus 3 words it.
A proxy in front of the real Prometheus adds the array to every answer, as a Prometheus 3 would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from tests.support.prometheus import ScenarioServer, invoice_args, serve_scenario
from tests.support.proxy import rewriting_proxy

pytestmark = pytest.mark.prometheus

INFO = (
    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "
    '"kube_pod_container_resource_requests" (1:10)'
)
runner = CliRunner()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    yield from serve_scenario(tmp_path_factory.mktemp("infos"), with_unpriced_storage=False)


def adding(field: str) -> Any:
    def rewrite(body: Any) -> Any:
        if isinstance(body, dict) and body.get("status") == "success":
            body[field] = [INFO]
        return body

    return rewrite


def test_infos_are_shown_and_do_not_block_billing(prometheus: ScenarioServer, tmp_path: Path) -> None:
    with rewriting_proxy(prometheus.url, adding("infos")) as url:
        result = runner.invoke(app, invoice_args(url, tmp_path / "with-infos"))
    assert result.exit_code == 0, result.output
    assert "Prometheus info (shown only, not a warning; billing goes on): PromQL info: metric might not" in (
        " ".join(result.output.split())
    )
    assert result.output.count("PromQL info:") == 1, "each distinct info is shown once"
    plain = runner.invoke(app, invoice_args(prometheus.url, tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    invoice = "invoices/data-insight.json"
    assert (tmp_path / "with-infos" / invoice).read_text() == (tmp_path / "plain" / invoice).read_text()


def test_warnings_still_block_billing(prometheus: ScenarioServer, tmp_path: Path) -> None:
    with rewriting_proxy(prometheus.url, adding("warnings")) as url:
        result = runner.invoke(app, invoice_args(url, tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "partial" in result.output.lower() and not (tmp_path / "out").exists()
