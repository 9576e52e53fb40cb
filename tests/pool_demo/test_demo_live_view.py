"""The README's live view on the demo data: `python -m pool_demo --keep-prometheus`, then the `chargeback serve`
line the demo prints, run as a process against the kept Prometheus and scraped over HTTP. The whole month's
figures must be the demo invoices' to the cent; `--at` a day of the month replays its month so far."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from chargeback.cli import app as chargeback_app
from chargeback.period import Period
from pool_demo.demo import run_demo, serve_command
from pool_demo.local_prometheus import free_port, stop_process

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog"
PERIOD = Period(2026, 10)
CENT = Decimal("0.01")
MID_MONTH = "2026-10-16T00:00:00Z"
"""15 whole days of October billed."""


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → (labels, value) of an exposition."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def unit_totals(scrape: dict) -> dict[str, Decimal]:
    return {
        labels["business_unit"]: Decimal(str(value)).quantize(CENT)
        for labels, value in scrape["resource_pool_business_unit_month_to_date_cost"]
    }


def scrape_until_refreshed(url: str, process: subprocess.Popen, timeout: float = 120) -> str:
    """/metrics once the first refresh published the unit totals (the server answers before that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chargeback serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            text = httpx.get(url, timeout=5).text
        except httpx.TransportError:
            text = ""
        if "resource_pool_business_unit_month_to_date_cost{" in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{url} did not publish month-to-date figures within {timeout:g} s")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo with its Prometheus kept: while it serves, run the printed serve line (the console script
    swapped for this interpreter, a free port for 9464) and a `--once --at` mid-month."""
    out = tmp_path_factory.mktemp("demo-live") / "out"
    console_text = io.StringIO()
    seen: dict = {}

    def keep(url: str) -> None:
        line = serve_command(url, PERIOD, CATALOG)
        seen["line"] = line
        args = shlex.split(line)
        assert args[0] == ".venv/bin/chargeback"
        port = free_port()
        args = [sys.executable, "-m", "chargeback.entry", *args[1:]]
        args[args.index("--listen") + 1] = f"127.0.0.1:{port}"
        process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            seen["whole"] = samples(scrape_until_refreshed(f"http://127.0.0.1:{port}/metrics", process))
        finally:
            stop_process(process)
        once = CliRunner().invoke(
            chargeback_app,
            ["serve", "--once", "--prometheus", url, "--catalog", str(CATALOG), "--at", MID_MONTH],
        )
        assert once.exit_code == 0, once.output
        seen["mid"] = samples(once.stdout)

    result = run_demo(out, PERIOD, CATALOG, Console(file=console_text, width=120), keep_prometheus=keep)
    assert result is not None
    invoices = {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((out / PERIOD.label / "invoices").glob("*.json"))
    }
    return {**seen, "invoices": invoices}


def test_serve_on_the_demo_month_exports_the_invoice_totals_to_the_cent(live: dict) -> None:
    totals = unit_totals(live["whole"])
    invoiced = {unit: Decimal(doc["total"]) for unit, doc in live["invoices"].items()}
    assert totals == invoiced
    assert len(totals) == 4 and all(total > 0 for total in totals.values())
    # The whole month: every hour billed, and the forecast is the month itself.
    assert live["whole"]["resource_pool_month_to_date_hours"] == [({}, 744.0)]
    forecast = {labels["business_unit"]: value for labels, value in live["whole"]["resource_pool_forecast_month_cost"]}
    assert {unit: Decimal(str(value)).quantize(CENT) for unit, value in forecast.items()} == invoiced
    # The per-line series add up to each invoice's resources, and the burn ratio is the invoice's budget use.
    lines: dict[str, Decimal] = {}
    for labels, value in live["whole"]["resource_pool_month_to_date_cost"]:
        lines[labels["business_unit"]] = lines.get(labels["business_unit"], Decimal(0)) + Decimal(str(value))
    for unit, doc in live["invoices"].items():
        resources = sum((Decimal(row["amount"]) for row in doc["by_resource"]), Decimal(0))
        assert lines.get(unit, Decimal(0)).quantize(CENT) == resources
    burn = {labels["business_unit"]: value for labels, value in live["whole"]["resource_pool_budget_burn_ratio"]}
    for unit, doc in live["invoices"].items():
        assert Decimal(str(burn[unit])).quantize(Decimal("0.0001")) == Decimal(doc["budget"]["used"])
    assert live["whole"]["resource_pool_exporter_last_refresh_success"] == [({}, 1.0)]


def test_serve_at_mid_month_replays_the_month_so_far(live: dict) -> None:
    mid = live["mid"]
    assert mid["resource_pool_month_to_date_hours"] == [({}, 15 * 24.0)]
    assert mid["resource_pool_month_hours"] == [({}, 744.0)]
    so_far, whole = unit_totals(mid), unit_totals(live["whole"])
    assert so_far.keys() == whole.keys()
    # Half a month of the same workloads: each unit between a quarter and three quarters of its month.
    for unit, total in so_far.items():
        assert whole[unit] / 4 < total < whole[unit] * 3 / 4, (unit, total, whole[unit])
    forecast = {labels["business_unit"]: value for labels, value in mid["resource_pool_forecast_month_cost"]}
    for unit, total in so_far.items():
        assert forecast[unit] == pytest.approx(float(total) * 744 / 360, abs=0.01)


def test_the_printed_serve_line_is_the_documented_one(live: dict) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    flags = "--period 2026-10 --at 2026-11-01T00:00:00Z"
    assert flags in live["line"]
    assert flags in readme


def test_serve_refuses_a_month_that_has_not_begun() -> None:
    result = CliRunner().invoke(
        chargeback_app,
        ["serve", "--once", "--prometheus", "http://127.0.0.1:1", "--period", "2026-12", "--at", MID_MONTH],
    )
    assert result.exit_code == 2
    assert "--period 2026-12 has not begun at 2026-10-16 00:00 UTC" in result.output
    bad = CliRunner().invoke(chargeback_app, ["serve", "--once", "--prometheus", "http://127.0.0.1:1", "--at", "soon"])
    assert bad.exit_code == 2
    assert "--at 'soon' is not a time" in bad.output
