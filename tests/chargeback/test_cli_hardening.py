"""The command lines under hostile or careless use: text with brackets printed as typed (never Rich markup),
tables that keep every digit off a terminal, and each of the tracebacks once seen turned into a message
with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeback.cli import app as chargeback_app
from infra.cli import app as pool_app
from pool_catalog.numbers import format_number
from pool_demo.local_prometheus import free_port
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.prometheus import ScenarioServer

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
BRACKETS = "Sales [emea] [/bold] [link=x]"


def idle_args(url: str, catalog: Path, *extra: str) -> list[str]:
    return ["idle", "--period", "2026-10", "--prometheus", url, "--catalog", str(catalog), "--cluster", "dc1",
            "--cluster-label", "cluster", *extra]  # fmt: skip


@pytest.fixture
def idle_catalog(tmp_path: Path) -> Path:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_hours", 4))
    edit_yaml(catalog / "business-units/data-insight.yaml", lambda doc: doc.__setitem__("display_name", BRACKETS))
    return catalog


@pytest.mark.prometheus
def test_idle_off_a_terminal_keeps_every_digit_at_80_columns(
    priced_prometheus: ScenarioServer, idle_catalog: Path
) -> None:
    """Before: piped or mailed at 80 columns, money was cut to `237…`. The table writes figures as the reports do
    (thousands separated), CSV and JSON as machine text."""
    table = runner.invoke(chargeback_app, idle_args(priced_prometheus.url, idle_catalog), env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    as_csv = runner.invoke(chargeback_app, idle_args(priced_prometheus.url, idle_catalog, "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows and "…" not in table.stdout
    for row in rows:
        for column in ("Capacity held (CNY)", "You pay (CNY)", "Allocated", "Recommended"):
            if row[column] == "—":  # no advice (short history)
                continue
            number, _, unit = row[column].partition(" ")
            assert "," not in number
            shown = format_number(Decimal(number)) + (f" {unit}" if unit else "")
            assert shown in table.stdout, (column, row[column], shown)
    as_json = runner.invoke(chargeback_app, idle_args(priced_prometheus.url, idle_catalog, "--format", "json"))
    assert json.loads(as_json.stdout) == rows


@pytest.mark.prometheus
def test_names_with_brackets_print_as_typed(priced_prometheus: ScenarioServer, idle_catalog: Path, tmp_path: Path):
    """Before: `[/bold]` in a display name crashed with MarkupError after the reports were written, and
    `Sales [emea]` lost its bracket text."""
    out = tmp_path / "2026-10"
    args = ["invoice", "--period", "2026-10", "--prometheus", priced_prometheus.url, "--catalog", str(idle_catalog),
            "--cluster", "dc1", "--cluster-label", "cluster", "--out", str(out)]  # fmt: skip
    result = runner.invoke(chargeback_app, args)
    assert result.exit_code == 0, result.output
    assert BRACKETS in result.stdout


def test_prometheus_error_with_brackets_prints_as_typed(tmp_path: Path) -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status":"error","errorType":"bad_data","error":"parse error at [/bold] near [red]"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = runner.invoke(chargeback_app, idle_args(url, EXAMPLE_CATALOG), terminal_width=250)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.exit_code == 2
    assert "parse error at [/bold] near [red]" in result.output
    assert "Traceback" not in result.output


def test_catalog_finding_with_brackets_prints_as_typed(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "business-units/platform.yaml", lambda doc: doc["namespaces"][0].__setitem__("name", "[/x]"))
    result = runner.invoke(pool_app, ["validate", "--catalog", str(catalog)], terminal_width=250)
    assert result.exit_code == 2
    assert "'[/x]' is not a DNS-1123 label" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--chunk-hours", "nan"], "--chunk-hours nan: give a positive number of hours"),
        (["--chunk-hours", "inf"], "--chunk-hours inf: give a positive number of hours"),
        (["--timeout", "inf"], "--timeout inf: give a positive number of s"),
        (["--deadline", "-1"], "--deadline -1: give a positive number of s"),
        (["--period", "9999-12"], "period '9999-12' is too far ahead"),
    ],
)
def test_flags_that_crashed_are_messages(tmp_path: Path, flags: list[str], message: str) -> None:
    args = ["invoice", "--period", "2026-10", "--prometheus", f"http://127.0.0.1:{free_port()}",
            "--catalog", str(EXAMPLE_CATALOG), "--out", str(tmp_path / "out")]  # fmt: skip
    if flags[0] in args:
        args[args.index(flags[0]) + 1] = flags[1]
    else:
        args += flags
    result = runner.invoke(chargeback_app, args, terminal_width=250)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_ca_bundle_that_is_not_pem_is_a_message(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n", encoding="utf-8")
    args = ["idle", "--period", "2026-10", "--prometheus", "https://127.0.0.1:9", "--catalog", str(EXAMPLE_CATALOG),
            "--ca-bundle", str(bundle)]  # fmt: skip
    result = runner.invoke(chargeback_app, args, terminal_width=250)
    assert result.exit_code == 2
    assert "is not a PEM file of certificates" in result.output and "Traceback" not in result.output


REQUEST = ["request", "--unit", "community-services", "--namespace", "cs-reports", "--node-pool", "general",
           "--memory", "32Gi"]  # fmt: skip


def test_pool_request_with_an_absurd_cpu_is_a_message(tmp_path: Path) -> None:
    result = runner.invoke(pool_app, [*REQUEST, "--cpu", "1e30", "--catalog", str(copy_example(tmp_path))])
    assert result.exit_code == 2
    assert "'1e30' is larger than Kubernetes can store" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_pool_request_write_into_a_folder_it_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, where file modes do not stop writes: the refusal is simulated where it happens."""
    catalog = copy_example(tmp_path)
    before = (catalog / "business-units/community-services.yaml").read_bytes()

    def refuse(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    result = runner.invoke(pool_app, [*REQUEST, "--cpu", "8", "--write", "--catalog", str(catalog)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "cannot create a file in" in output and "Permission denied" in output
    assert "Traceback" not in output
    assert (catalog / "business-units/community-services.yaml").read_bytes() == before


STARTER = """
import sys
sys.argv = ["cli", "--help"]
sys.stderr.write("ready\\n")
sys.stderr.flush()
from {module} import main
main()
"""


@pytest.mark.parametrize("module", ["chargeback.entry", "infra.entry"])
def test_ctrl_c_while_starting_is_a_message(module: str) -> None:
    """SIGINT while the heavy modules load (pandas, Pulumi: over half a second here). The child says when
    the interpreter itself is up, so the signal lands in the command's start-up, not in Python's."""
    process = subprocess.Popen(
        [sys.executable, "-c", STARTER.format(module=module)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A terminal's Ctrl-C reaches a command whose SIGINT is at its default; a test runner started in the
        # background (a non-interactive shell's `&`) hands its children SIGINT ignored instead.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    assert process.stderr.readline() == "ready\n"
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 2, (process.returncode, stderr)
    assert "interrupted while starting; nothing was done" in stderr
