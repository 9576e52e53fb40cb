"""What `pool` prints for people: whole policy messages at any width, amounts in human units."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra import cli
from infra.check import check_catalog
from pool_catalog import load_catalog
from pool_catalog.quantities import GIB, format_amount
from tests.support.catalog_edit import EXAMPLE_CATALOG

ROOT = Path(__file__).resolve().parents[2]
TIB = GIB * 1024


@pytest.fixture(scope="module")
def headroom_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 % headroom: every node pool of the example fails the capacity rule with long messages."""
    path = tmp_path_factory.mktemp("policy") / "cfg.json"
    path.write_text(json.dumps({"node-pool-capacity": {"headroom_percent": 70}}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def expected_lines(headroom_config: Path) -> list[str]:
    config = json.loads(headroom_config.read_text(encoding="utf-8"))
    violations = check_catalog(load_catalog(EXAMPLE_CATALOG), None, config)
    assert len(violations) == 5
    return [f"{v.enforcement} {v.resource}: {v.message}" for v in violations]


def test_pool_check_piped_prints_every_message_whole_on_its_line(headroom_config: Path, expected_lines: list) -> None:
    """Through a pipe with COLUMNS=40 (as in CI logs or `| less`), each finding is one whole line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.entry",
            "check",
            "--catalog",
            str(EXAMPLE_CATALOG),
            "--policy-config",
            str(headroom_config),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "40", "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert result.returncode == 1, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    for line in expected_lines:
        assert line in lines
    assert "policy check failed: 5 mandatory and 0 advisory violations" in lines
    # The quantities in them are in human units.
    assert any("= 86.4 cores by 9.6 cores" in line for line in lines)
    assert any("= 460.8 GiB by 51.2 GiB" in line for line in lines)


def test_pool_check_on_a_narrow_terminal_wraps_but_never_cuts(
    headroom_config: Path, expected_lines: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 40-column terminal: the terminal wraps the long lines, the program inserts no break and cuts nothing."""
    screen = io.StringIO()
    terminal = Console(file=screen, width=40, force_terminal=True, color_system=None, highlight=False, markup=False)
    monkeypatch.setattr(cli, "out", terminal)
    result = CliRunner().invoke(
        cli.app, ["check", "--catalog", str(EXAMPLE_CATALOG), "--policy-config", str(headroom_config)]
    )
    assert result.exit_code == 1
    lines = [line.strip() for line in screen.getvalue().splitlines()]
    for line in expected_lines:
        assert line in lines
    assert not any(line.endswith("…") for line in lines)


@pytest.mark.parametrize(
    ("resource", "amount", "text"),
    [
        ("cpu", Decimal("86.4"), "86.4 cores"),
        ("cpu", Decimal("0.25"), "0.25 cores"),
        ("cpu", Decimal(1), "1 core"),
        ("cpu", Decimal(12_345), "12,345 cores"),
        ("cpu", Decimal(-68), "-68 cores"),
        ("memory", 512 * GIB, "512 GiB"),
        ("memory", 1536 * GIB, "1.5 TiB"),
        ("memory", 1632 * GIB, "1,632 GiB"),  # 1.59375 TiB: not exact in two decimals, so GiB
        ("memory", Decimal("460.8") * GIB, "460.8 GiB"),
        ("memory", Decimal(0), "0 GiB"),
        ("storage", 40 * TIB, "40 TiB"),
        ("storage", 44_508 * GIB, "44,508 GiB"),
        ("storage", 512 * 2**20 * Decimal(1), "512 MiB"),
        ("gpu", Decimal(1), "1 GPU"),
        ("gpu", Decimal("1.2"), "1.2 GPUs"),
        ("load_balancers", Decimal(5), "5"),
    ],
)
def test_format_amount_in_human_units(resource: str, amount: Decimal, text: str) -> None:
    assert format_amount(resource, amount) == text


def test_format_amount_rounds_down_when_asked_so_free_room_is_safe_to_ask_for() -> None:
    free = GIB * Decimal("51.199")  # not exact in two decimals of GiB
    assert format_amount("memory", free) == "51.2 GiB"
    assert format_amount("memory", free, ROUND_FLOOR) == "51.19 GiB"
    assert Decimal("51.19") * GIB <= free


def test_pool_capacity_prints_human_units_whole_off_a_terminal() -> None:
    result = CliRunner().invoke(cli.app, ["capacity", "--catalog", str(EXAMPLE_CATALOG)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["batch", "memory", "1.5", "TiB", "×1.0", "1.5", "TiB", "512", "GiB", "1", "TiB", "33.3", "%"] in rows


def test_pool_request_heading_and_money_read_whole_when_piped() -> None:
    """Piped at 80 columns: the cost table's heading is one line, money as on the invoices."""
    result = CliRunner().invoke(
        cli.app,
        [
            *("request", "--catalog", str(EXAMPLE_CATALOG), "--at", "2026-11-01T00:00:00Z"),
            *("--unit", "community-services", "--namespace", "cs-reports", "--node-pool", "general"),
            *("--cpu", "8", "--memory", "32Gi", "--storage", "hot=500Gi"),
        ],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    heading = [line for line in result.output.splitlines() if line.startswith("monthly cost at full quota")]
    assert len(heading) == 1 and heading[0].endswith(")"), heading
    assert "budget 20,000.00 CNY (75.2 % of it;" in result.output
