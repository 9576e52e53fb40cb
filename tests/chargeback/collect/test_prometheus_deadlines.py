"""Failing slowly is failing: a loopback HTTP server that answers 500, hangs, or trickles its body one byte
at a time, against the client's per-request wall-clock limit, its run deadline and retry budget; hints that
match Prometheus's own error texts; progress and request logs; and `serve` reporting a hung refresh."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chargeback.collect import prometheus as prometheus_module
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings, RangeQuery
from chargeback.errors import PrometheusError, PrometheusQueryError, PrometheusUnreachableError
from chargeback.exporter import ExporterSource, MonthToDateCollector, registry_of
from tests.support.catalog_edit import EXAMPLE_CATALOG

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
MONTH = RangeQuery("sum(up)", T0, T0 + dt.timedelta(days=31) - dt.timedelta(hours=1), dt.timedelta(hours=1))
EMPTY = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()


class Behaviour:
    """What the server does; `requests` counts what it was asked."""

    def __init__(self, answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        self.answer = answer
        self.requests = 0
        self.stop = threading.Event()


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[http.server.BaseHTTPRequestHandler], None]], tuple[str, Behaviour]]]:
    started: list[tuple[http.server.ThreadingHTTPServer, Behaviour]] = []

    def start(answer: Callable[[http.server.BaseHTTPRequestHandler], None]) -> tuple[str, Behaviour]:
        behaviour = Behaviour(answer)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                behaviour.requests += 1
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    behaviour.answer(self)

            def log_message(self, *_: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append((httpd, behaviour))
        return f"http://127.0.0.1:{httpd.server_address[1]}", behaviour

    yield start
    for httpd, behaviour in started:
        behaviour.stop.set()
        httpd.shutdown()
        httpd.server_close()


def answer_with(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def always_500(handler: http.server.BaseHTTPRequestHandler) -> None:
    answer_with(handler, 500, b'{"status":"error","errorType":"internal","error":"storage is broken"}')


def hangs(behaviour_stop: threading.Event) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        behaviour_stop.wait(60)

    return answer


def trickles(stop: threading.Event) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    """Headers at once, then the body one byte every 0.5 s."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(EMPTY)))
        handler.end_headers()
        for byte in EMPTY:
            if stop.is_set():
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.5)

    return answer


def test_a_server_failing_every_time_fails_the_run_at_once(server) -> None:
    """Before: every one of the 31 pieces retried on its own (337 s of silence). Now the first piece that
    fails for good stops the run, and the retry budget caps the attempts."""
    url, behaviour = server(always_500)
    settings = PrometheusSettings(url=url, retries=3, backoff=0.05, retry_budget=4, concurrency=2)
    started = time.monotonic()
    with PrometheusClient(settings) as client, pytest.raises(PrometheusQueryError) as raised:
        client.query_ranges([MONTH])
    assert time.monotonic() - started < 5
    assert behaviour.requests <= 2 + 4 + 2, behaviour.requests  # first tries in flight + the budget
    assert "request(s) not sent after the failure" in str(raised.value)


def test_a_hung_server_hits_the_run_deadline(server) -> None:
    stop = threading.Event()
    url, _ = server(hangs(stop))
    settings = PrometheusSettings(url=url, timeout=30, deadline=1.5, retries=3, backoff=0.05)
    started = time.monotonic()
    with PrometheusClient(settings) as client, pytest.raises(PrometheusUnreachableError) as raised:
        client.query_ranges([MONTH])
    elapsed = time.monotonic() - started
    stop.set()
    assert 1.4 < elapsed < 4, elapsed
    assert "the run's deadline of 1.5 s passed" in str(raised.value)
    assert "raise --deadline" in str(raised.value)


def test_a_trickling_body_does_not_outlive_the_timeout(server) -> None:
    """Before: a body arriving one byte at a time kept a run with --timeout 3 going for minutes."""
    stop = threading.Event()
    url, behaviour = server(trickles(stop))
    settings = PrometheusSettings(url=url, timeout=1.0, retries=1, backoff=0.05, deadline=None)
    started = time.monotonic()
    with PrometheusClient(settings) as client, pytest.raises(PrometheusUnreachableError) as raised:
        client.query("sum(up)")
    elapsed = time.monotonic() - started
    stop.set()
    assert elapsed < 2 * (1.0 + 0.5) + 0.5, elapsed  # two attempts, each cut at its limit (+ one byte)
    assert behaviour.requests == 2
    assert "did not answer in full within 1 s" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # Prometheus's own texts: promql/engine.go ErrTooManySamples and ErrQueryTimeout, answered by
        # web/api/v1/api.go as errorType execution (422) and timeout (503).
        (
            422,
            {
                "errorType": "execution",
                "error": "query processing would load too many samples into memory in query execution",
            },
        ),
        (503, {"errorType": "timeout", "error": "query timed out in expression evaluation"}),
    ],
)
def test_limits_of_prometheus_get_the_chunk_hours_hint(server, status: int, body: dict) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps({"status": "error", **body}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    url, _ = server(answer)
    with PrometheusClient(PrometheusSettings(url=url, retries=0)) as client, pytest.raises(PrometheusError) as raised:
        client.query("sum(up)")
    assert "lower --chunk-hours" in str(raised.value)
    assert "check --match" not in str(raised.value)


def test_progress_on_the_progress_logger_and_requests_at_debug(
    server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(EMPTY)))
        handler.end_headers()
        handler.wfile.write(EMPTY)

    url, _ = server(answer)
    monkeypatch.setattr(prometheus_module, "PROGRESS_EVERY", 0.0)
    caplog.set_level(logging.DEBUG, logger="chargeback")
    caplog.set_level(logging.DEBUG, logger="chargeback.collect.prometheus")  # a CLI test may have set it to INFO
    with PrometheusClient(PrometheusSettings(url=url, concurrency=1)) as client:
        client.query_ranges([MONTH])
    progress = [r for r in caplog.records if r.name == "chargeback.progress"]
    assert progress and progress[-1].levelno == logging.INFO
    assert progress[-1].getMessage().startswith("Prometheus: 31 of 31 requests answered in")
    requests = [r for r in caplog.records if r.name == "chargeback.collect.prometheus"]
    assert len(requests) == 31 and all(r.levelno == logging.DEBUG for r in requests)
    assert "GET /api/v1/query_range sum(up): HTTP 200" in requests[0].getMessage()


def test_a_non_pem_ca_bundle_is_a_message(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("this is not a certificate\n", encoding="utf-8")
    with pytest.raises(PrometheusError, match=r"CA bundle .*ca\.crt is not a PEM file of certificates"):
        PrometheusClient(PrometheusSettings(url="https://127.0.0.1:9", ca_bundle=bundle))


def test_serve_reports_a_hung_refresh_as_failing(server) -> None:
    """Before: with a hanging Prometheus the exporter kept last_refresh_success 1 and 0 errors, so the
    shipped ResourcePoolExporterRefreshFailing alert never fired."""
    stop = threading.Event()
    url, _ = server(hangs(stop))
    now = [0.0]
    source = ExporterSource(EXAMPLE_CATALOG, PrometheusSettings(url=url, timeout=30, deadline=2, retries=0))
    collector = MonthToDateCollector(
        source, clock=lambda: dt.datetime(2026, 10, 15, 12, tzinfo=dt.UTC), interval=1.0, monotonic=lambda: now[0]
    )
    collector._health = type(collector._health)(ok=True, last_success=1.0)  # an earlier good refresh
    refresher = threading.Thread(target=collector.refresh)
    refresher.start()
    try:
        time.sleep(0.3)
        assert scrape(collector)["resource_pool_exporter_last_refresh_success"] == 1.0  # within its interval
        now[0] = 1.5  # the refresh has now run longer than its interval
        metrics = scrape(collector)
        assert metrics["resource_pool_exporter_last_refresh_success"] == 0.0
        assert metrics["resource_pool_exporter_refresh_errors_total"] == 1.0
    finally:
        refresher.join(timeout=10)
        stop.set()
    assert not refresher.is_alive()
    metrics = scrape(collector)  # the refresh gave up at its deadline: one failure, counted once
    assert metrics["resource_pool_exporter_last_refresh_success"] == 0.0
    assert metrics["resource_pool_exporter_refresh_errors_total"] == 1.0


def scrape(collector: MonthToDateCollector) -> dict[str, float]:
    from prometheus_client import generate_latest

    values = {}
    for line in generate_latest(registry_of(collector)).decode().splitlines():
        if line.startswith("resource_pool_exporter_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def always_503(handler: http.server.BaseHTTPRequestHandler) -> None:
    """What Prometheus answers for a query that timed out (web/api/v1/api.go: errorTimeout → 503)."""
    body = b'{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}'
    answer_with(handler, 503, body)


@pytest.mark.parametrize("command", ["doctor", "invoice"])
def test_a_server_answering_500_fails_a_run_with_default_flags_in_under_5_s(server, tmp_path: Path, command) -> None:
    """Before: 8.8 s (every 500 retried 3 times with 0.5 + 1 + 2 s of backoff, the build-info probe first)."""
    from typer.testing import CliRunner

    from chargeback.cli import app

    url, _ = server(always_500)
    args = [command, "--period", "2026-10", "--prometheus", url, "--catalog", str(EXAMPLE_CATALOG)]
    args += ["--out", str(tmp_path / "out")] if command == "invoice" else []
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert "HTTP 500" in result.output and "storage is broken" in result.output
    assert elapsed < 5, elapsed


def test_a_500_is_retried_once_and_a_503_every_time(server) -> None:
    for answer, attempts in ((always_500, 2), (always_503, 4)):
        url, behaviour = server(answer)
        with PrometheusClient(PrometheusSettings(url=url, backoff=0.01)) as client, pytest.raises(PrometheusError):
            client.query("up")
        assert behaviour.requests == attempts, (answer.__name__, behaviour.requests)
