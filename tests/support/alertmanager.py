"""Debian's Alertmanager on a loopback port, and a webhook receiver that records what it delivers.

Alertmanager listens on 127.0.0.1 only, with cluster mode off (`--cluster.listen-address=`), and
keeps its state in a temporary directory. The receiver answers every POST with 200 and records the
path (one per contact in the test catalogs), the JSON body Alertmanager's webhook notifier sends
(receiver, status, alerts[] with labels/annotations/startsAt/endsAt, groupLabels …) and when it came.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

from pool_demo.local_prometheus import free_port, stop_process

BINARY = "prometheus-alertmanager"  # Debian's name for the alertmanager binary


def require_alertmanager() -> str:
    """Path of Debian's alertmanager, or a failure (never a skip) saying how to install it."""
    path = shutil.which(BINARY) or shutil.which("alertmanager")
    if path is None:
        pytest.fail("prometheus-alertmanager is missing: run `make test` (installs the Debian package)", pytrace=False)
    return path


class LocalAlertmanager:
    """Alertmanager with `config` on 127.0.0.1:<free port>; a context manager."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self.log_file = workdir / f"alertmanager-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalAlertmanager:
        storage = self.workdir / f"alertmanager-{self.port}"
        storage.mkdir(parents=True, exist_ok=True)
        command = [
            require_alertmanager(),
            f"--config.file={self.config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # no gossip: a single instance, nothing listens beyond loopback
            "--log.level=warn",
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(f"alertmanager exited while starting: {self.log_file.read_text()[-1500:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise AssertionError(f"alertmanager on {self.url} was not ready after 30 s")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v2/{path}", params=params, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()


@dataclass(frozen=True)
class Delivery:
    """One notification as the webhook received it."""

    path: str
    body: dict[str, Any]
    at: float  # time.time() on arrival

    @property
    def alertnames(self) -> set[str]:
        return {alert["labels"]["alertname"] for alert in self.body["alerts"]}


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording every POST; a context manager."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, body, time.time()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def received(self, path: str | None = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if path is None or d.path == path]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> list[Delivery]:
        """Deliveries matching `predicate`, waiting until at least one arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [d for d in self.received() if predicate(d)]
            if found:
                return found
            time.sleep(0.2)
        got = [(d.path, d.body.get("status"), sorted(d.alertnames)) for d in self.received()]
        raise AssertionError(f"no delivery of {what} within {timeout:g} s; received {got}")
