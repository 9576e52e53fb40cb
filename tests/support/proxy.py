"""A reverse proxy on loopback in front of a real Prometheus: basic auth required, or answers rewritten.

`basic_auth_proxy`: what a Prometheus behind nginx/oauth-proxy looks like to chargeback — 401 with
`WWW-Authenticate: Basic` without the right `Authorization` header (RFC 7617), the upstream's answer otherwise.
`rewriting_proxy`: every JSON answer passed through a function, e.g. to add the `infos` a Prometheus 3 returns.
Every path and query is forwarded.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@contextmanager
def _proxy(upstream: str, authorization: str | None, rewrite: Callable[[Any], Any] | None) -> Iterator[str]:
    client = httpx.Client(base_url=upstream, timeout=60)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if authorization is not None and self.headers.get("Authorization") != authorization:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="prometheus"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer = client.get(self.path)
            body = answer.content
            if rewrite is not None and answer.headers.get("content-type", "").startswith("application/json"):
                body = json.dumps(rewrite(answer.json())).encode()
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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


def basic_auth_proxy(upstream: str, user: str, password: str) -> Any:
    """Serve until the block ends, refusing requests without the user and password; yields the proxy's URL."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return _proxy(upstream, expected, None)


def rewriting_proxy(upstream: str, rewrite: Callable[[Any], Any]) -> Any:
    """Serve until the block ends, passing each JSON answer through `rewrite`; yields the proxy's URL."""
    return _proxy(upstream, None, rewrite)
