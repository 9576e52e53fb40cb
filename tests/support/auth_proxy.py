"""A reverse proxy on loopback that requires HTTP basic auth before passing a GET to a real Prometheus.

What a Prometheus behind nginx/oauth-proxy looks like to chargeback: 401 with `WWW-Authenticate: Basic` without
the right `Authorization` header (RFC 7617), the upstream's answer otherwise. Every path and query is forwarded.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@contextmanager
def basic_auth_proxy(upstream: str, user: str, password: str) -> Iterator[str]:
    """Serve until the block ends; yields the proxy's URL (http://127.0.0.1:<port>)."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    client = httpx.Client(base_url=upstream, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="prometheus"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = client.get(self.path)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()
