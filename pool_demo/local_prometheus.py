"""A throw-away Prometheus on a loopback port, serving series backfilled from OpenMetrics text.

Used by the tests, the demo and the bench: `backfill(om_file, data_dir)` runs
`promtool tsdb create-blocks-from openmetrics --max-block-duration=744h` (without that flag a month
takes minutes: promtool would cut two-hour blocks), then `LocalPrometheus(data_dir)` starts Debian's
`prometheus` with no scrape targets, ten years of retention (so old backfilled blocks stay) and
`--web.listen-address=127.0.0.1:<free port>`, waits for `/-/ready` and stops it on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from chargeback.errors import LocalPrometheusError

INSTALL_HINT = "run `make test` or `make demo` (both install Debian's prometheus package)"
BINARY_ENV = "RESOURCE_POOL_PROMETHEUS"
"""Path of another `prometheus` to serve with (Prometheus 3 from `make e2e-tools`); promtool stays Debian's."""


def find_binary(name: str) -> str:
    """Path of `prometheus` / `promtool`, or a LocalPrometheusError saying how to install it."""
    chosen = os.environ.get(BINARY_ENV) if name == "prometheus" else None
    if chosen:
        if not (Path(chosen).is_file() and os.access(chosen, os.X_OK)):
            raise LocalPrometheusError(f"{BINARY_ENV}={chosen} is not an executable file: run `make e2e-tools`")
        return chosen
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path is None:
        raise LocalPrometheusError(f"`{name}` is not installed: {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backfill(openmetrics_file: Path, data_dir: Path) -> None:
    """Turn an OpenMetrics file into TSDB blocks under `data_dir` (created if needed)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        find_binary("promtool"),
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--max-block-duration=744h",
        str(openmetrics_file),
        str(data_dir),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise LocalPrometheusError(f"promtool could not backfill {openmetrics_file}: {detail}")


def stop_process(process: subprocess.Popen | None) -> None:
    """Stop a local server if it still runs: SIGTERM, then SIGKILL after 15 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class LocalPrometheus:
    """Prometheus serving `data_dir` on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        ready_timeout: float = 60.0,
        scrape_targets: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        alertmanagers: Sequence[str] = (),
        external_labels: Mapping[str, str] | None = None,
        query_timeout: str | None = None,
    ) -> None:
        """`scrape_targets`: host:port addresses scraped every second (e.g. an exporter under test);
        `rule_files` are evaluated every second and their alerts sent to the `alertmanagers` (host:port);
        `external_labels`: the server's identity towards Thanos (e.g. cluster and replica);
        `query_timeout`: Prometheus' --query.timeout (its default, 2m, when None)."""
        self.data_dir = data_dir
        self.scrape_targets = list(scrape_targets)
        self.rule_files = list(rule_files)
        self.alertmanagers = list(alertmanagers)
        self.external_labels = dict(external_labels or {})
        self.query_timeout = query_timeout
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = data_dir.parent / f"prometheus-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start Prometheus and wait until it answers /-/ready; returns its URL."""
        binary = find_binary("prometheus")
        config = self.data_dir.parent / f"prometheus-{self.port}.yml"
        # Without scrape targets the server only serves the backfilled blocks.
        config.write_text(self._config(), encoding="utf-8")
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=3650d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
            *([f"--query.timeout={self.query_timeout}"] if self.query_timeout else []),
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LocalPrometheusError(
                    f"prometheus exited with status {self._process.returncode} while starting: {self._log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LocalPrometheusError(
            f"prometheus on {self.url} was not ready after {self.ready_timeout:g} s: {self._log_tail()}"
        )

    def _config(self) -> str:
        labels = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in sorted(self.external_labels.items()))
        external = f"  external_labels:\n{labels}" if labels else ""
        if not (self.scrape_targets or self.rule_files or self.alertmanagers):
            return f"global:\n  scrape_interval: 1m\n{external}scrape_configs: []\n"
        targets = ", ".join(f'"{target}"' for target in self.scrape_targets)
        config = (
            f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{external}"
            f"scrape_configs:\n  - job_name: targets\n    static_configs:\n      - targets: [{targets}]\n"
        )
        if self.rule_files:
            config += "rule_files:\n" + "".join(f'  - "{path}"\n' for path in self.rule_files)
        if self.alertmanagers:
            managers = ", ".join(f'"{address}"' for address in self.alertmanagers)
            config += f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{managers}]\n"
        return config

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s)."""
        process, self._process = self._process, None
        stop_process(process)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace").strip()[-1500:] or "(no log output)"
        except OSError:
            return "(no log file)"

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
