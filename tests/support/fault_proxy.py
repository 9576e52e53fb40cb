"""A fault-injecting HTTP proxy (loopback) in front of the real Prometheus of the tests.

Each fault is one a real setup produces, made deterministic:

* `drop` — a series Prometheus does not hold (a metricRelabelings rule dropping `id="/"`, an exporter's
  allow-list): the proxy adds a negative matcher to every selector of the metric in the query, so the
  server answers as if the series had never been scraped, in every query that reads it (the doctor's
  aggregated ones as much as billing's).
* `duplicate` — one result series sent twice in one answer. One Prometheus never does that (the engine
  keys result series by their label set; web/api/v1/api.go of prometheus/prometheus writes
  `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{…},"values":[[t,"v"],…]}]}}` with
  one entry per label set), but a federation or a Thanos Querier over two replicas without deduplication
  (`dedup=false`, no replica label) answers each replica's copy.
* `fail_every` — HTTP 503 (Prometheus's own status for a query timeout, and a load balancer's when a
  replica restarts) for every n-th request, counted over the proxy's life.
* `lose_after` — samples from an instant on are gone (a Prometheus whose newest blocks were lost, or whose
  retention passed): every answer keeps only the points before it.
* `hang` — accept the request and never answer.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Faults:
    """What the proxy does to requests and answers; `requests` and `failed` count what happened."""

    drop: tuple[tuple[str, str, str], ...] = ()
    """(metric, label, value): series of `metric` with label=value are left out of every answer."""
    duplicate: str | None = None
    """Text of a query whose answer gets its first series twice."""
    fail_every: int = 0
    """Every n-th request is answered HTTP 503 (0: never)."""
    lose_after: float | None = None
    """Unix time from which no answer has points (None: nothing lost)."""
    hang: bool = False
    requests: int = 0
    failed: int = 0
    duplicated: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def rewrite(query: str, drop: tuple[tuple[str, str, str], ...]) -> str:
    """`query` with `label!="value"` added to every selector of each dropped metric."""
    for metric, label, value in drop:
        negative = f'{label}!="{value}"'
        query = re.sub(rf"\b{re.escape(metric)}\{{", f"{metric}{{{negative},", query)
        query = re.sub(rf"(?<![|\"])\b{re.escape(metric)}\b(?![{{_a-zA-Z0-9|\"])", f"{metric}{{{negative}}}", query)
    return query


TIMEOUT_BODY = json.dumps({"status": "error", "errorType": "unavailable", "error": "upstream restarting"}).encode()


@contextlib.contextmanager
def fault_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """Serve the proxy on a free loopback port until the block ends; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with faults.lock:
                faults.requests += 1
                number = faults.requests
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if faults.hang:
                    faults.stop.wait(120)
                    return
                if faults.fail_every and number % faults.fail_every == 0:
                    with faults.lock:
                        faults.failed += 1
                    self._send(503, TIMEOUT_BODY)
                    return
                self._forward()

        def _forward(self) -> None:
            path, _, query_string = self.path.partition("?")
            params = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
            query = next((v for k, v in params if k == "query"), "")
            params = [(k, rewrite(v, faults.drop) if k in ("query", "match[]") else v) for k, v in params]
            url = f"{upstream}{path}?{urllib.parse.urlencode(params)}"
            try:
                with urllib.request.urlopen(url, timeout=60) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            if status == 200 and path.endswith(("/query", "/query_range")):
                body = self._alter(body, query)
            self._send(status, body)

        def _alter(self, body: bytes, query: str) -> bytes:
            document = json.loads(body)
            result = document["data"]["result"]
            if faults.lose_after is not None:
                cut = faults.lose_after
                if document["data"]["resultType"] == "matrix":
                    for item in result:
                        item["values"] = [point for point in item["values"] if float(point[0]) < cut]
                    result[:] = [item for item in result if item["values"]]
                else:
                    result[:] = [item for item in result if float(item["value"][0]) < cut]
            if faults.duplicate is not None and faults.duplicate in query and result:
                result.insert(1, result[0])
                with faults.lock:
                    faults.duplicated += 1
            return json.dumps(document).encode()

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        faults.stop.set()
        server.shutdown()
        server.server_close()
