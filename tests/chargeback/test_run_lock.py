"""Two `chargeback invoice` runs on one --out: the second is refused at its start, before it asks Prometheus.

Before, the run lock was taken only to publish, so two runs each collected and billed the month and were
refused only if they met at the moment of publishing (3 of 4 tries both exited 0). Here a real process holds
the folder's run lock while another `chargeback invoice` starts; a loopback server standing in for
Prometheus records every request it gets: none may arrive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chargeback.outputs.report_set import STATE_DIR
from tests.support.prometheus import invoice_args

HOLDER = """
import fcntl, sys
from pathlib import Path
state = Path(sys.argv[1]) / ".reports"
state.mkdir(parents=True)
with (state / "lock").open("a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()
"""
"""Another run holding the folder's lock, as report_set takes it (flock on .reports/lock)."""


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that answers 503 and records the path of every request."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def chargeback(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from chargeback.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def test_a_second_run_on_one_folder_is_refused_before_it_asks_prometheus(
    tmp_path: Path, recorder: tuple[str, list[str]]
) -> None:
    url, seen = recorder
    out = tmp_path / "2026-10"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = chargeback(*invoice_args(url, out, "--deadline", "20"))
    finally:
        holder.communicate("\n", timeout=30)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "another chargeback run is writing to" in refused.stderr
    assert seen == [], "the refused run asked Prometheus"
    assert "Traceback" not in refused.stderr


def test_a_run_that_fails_leaves_no_folder_it_created(tmp_path: Path, recorder: tuple[str, list[str]]) -> None:
    url, seen = recorder
    out = tmp_path / "2026-10"
    failed = chargeback(*invoice_args(url, out, "--deadline", "3"))
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert seen, "this run did ask Prometheus (which answered 503)"
    assert not out.exists() and not (out / STATE_DIR).exists()
