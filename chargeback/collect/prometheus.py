"""A small client for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Why not a generic client: chargeback needs four things generic clients leave out —
retries with exponential backoff on 5xx / timeouts / connection errors (never on 4xx: a bad
query stays bad), within a run-wide retry budget and deadline; a wall-clock limit per request that
covers a slowly trickling body too (the body is streamed and the clock checked between pieces);
Prometheus `warnings` (partial answers from Thanos, Mimir, Cortex …) collected
and returned rather than dropped; range queries split so that no series exceeds the server's
11,000 points per query and no request covers more than `chunk` of time (month-long windows time
out on busy servers); and errors that name the query, the server and how to fix it.

The JSON is parsed here into `Series` (labels + numpy arrays); nothing downstream sees JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pool_catalog.models import redacted

from ..errors import (
    PrometheusError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnreachableError,
)

log = logging.getLogger(__name__)
progress_log = logging.getLogger("chargeback.progress")
"""Progress of long collections (INFO); the command line shows it on stderr."""

PROGRESS_EVERY = 10.0
"""Seconds between two progress messages."""

RETRIES_AFTER_500 = 1
"""A 500 is retried once only: Prometheus answers 500 for an internal error (web/api/v1/api.go, errorInternal),
which a retry seldom cures, so a server failing that way fails the run in seconds. 502, 503 and 504 (a proxy, a
restart, a query timeout) keep every retry of `retries`."""

MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses range queries whose result would have more points per series than this."""


def shown_url(value: str) -> str:
    """A `--prometheus` value as messages may print it: as given when it holds no user, password, query or
    fragment, else without them (query values as ***)."""
    return redacted(value) if any(mark in value for mark in "@?#") else value


class PrometheusSettings(BaseModel):
    """Where Prometheus is and how to talk to it."""

    # A refused value may be a URL with a password: a validation error never repeats the input.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str = Field(
        "http://127.0.0.1:9090",
        description="Base URL of the Prometheus (or Thanos/Mimir) API, e.g. http://127.0.0.1:9090.",
    )
    bearer_token_file: Path | None = Field(None, description="File holding a bearer token sent as Authorization.")
    basic_auth_user: str | None = Field(None, description="User for HTTP basic auth.")
    basic_auth_password_file: Path | None = Field(None, description="File holding the basic-auth password.")
    ca_bundle: Path | None = Field(None, description="PEM bundle of CAs that sign the server's certificate.")
    insecure_skip_verify: bool = Field(False, description="Do not verify the server certificate (testing only).")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. X-Scope-OrgID for Mimir/Cortex tenants."
    )
    timeout: float = Field(
        120.0, gt=0, allow_inf_nan=False, description="Seconds one request may take, body included, before retrying."
    )
    deadline: float | None = Field(
        3600.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a whole run may take, every request, retry and backoff included (serve: at most its "
        "--interval).",
    )
    retries: int = Field(
        3, ge=0, le=10, description="Retries of one request after a 5xx, a timeout or a connection error."
    )
    retry_budget: int = Field(
        12,
        ge=0,
        description="Retries one run may spend in all, on top of --retry-share of its requests, so a failing server "
        "is given up on early.",
    )
    retry_share: float = Field(
        0.1,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Retries one run may spend per request it sends, on top of --retry-budget: 0.1 lets a month of "
        "545 requests retry 12 + 55 times, so a server failing now and then does not fail the month.",
    )
    stall: float | None = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a run may wait without any answer from Prometheus before it fails (a hung server); "
        "raise it for a Prometheus whose single queries take longer.",
    )
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubles on each further one.")
    max_points: int = Field(
        MAX_POINTS_PER_SERIES, ge=2, le=MAX_POINTS_PER_SERIES, description="Most points per series in one request."
    )
    chunk: dt.timedelta = Field(
        dt.timedelta(days=1),
        description="Longest time span of one range request, longer ranges are split; lower it when Prometheus "
        "times out or hits its sample limit.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight at once.")
    query_params: dict[str, str] = Field(
        default_factory=dict,
        description="Extra parameters of every query, e.g. for a Thanos Querier: dedup=true, "
        "partial_response=false, max_source_resolution=0s (raw samples only, never downsampled blocks).",
    )
    promql_version: str | None = Field(
        None,
        description="Prometheus version whose PromQL the server evaluates, when its build info does not say "
        "(Thanos 0.37 and later evaluate with the Prometheus 3 engine: 3.0).",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """The URL is printed in messages and recorded in every issued invoice and the ledger (which keeps it
        for good), so it may hold no secret: a user:password or a query (where tokens travel) is refused."""
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{shown_url(value)!r} is not an http(s) URL; write e.g. http://127.0.0.1:9090")
        parts = urlsplit(value)
        if "@" in parts.netloc:
            raise ValueError(
                f"{redacted(value)!r} carries a user name or password before the host, and the URL is written into "
                "every issued invoice and the ledger; give the user with --basic-auth-user and the password in a "
                "file only you can read with --basic-auth-password-file (a token: --bearer-token-file)"
            )
        if parts.query or parts.fragment:
            raise ValueError(
                f"{redacted(value)!r} has a query or fragment, where tokens travel, and the URL is written into every "
                "issued invoice and the ledger; give the API root only (e.g. http://host:9090/prometheus), a token "
                "with --bearer-token-file and a tenant with --header"
            )
        return value.rstrip("/")

    @field_validator("chunk")
    @classmethod
    def _positive_chunk(cls, value: dt.timedelta) -> dt.timedelta:
        if value <= dt.timedelta(0):
            raise ValueError("chunk must be a positive duration")
        return value


@dataclass(frozen=True)
class Series:
    """One time series of an answer: its labels and its points (unix seconds, values)."""

    labels: Mapping[str, str]
    timestamps: np.ndarray
    values: np.ndarray


@dataclass
class QueryResult:
    """Every series of one query, with the warnings Prometheus attached to any part of it."""

    query: str
    series: list[Series] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RangeQuery:
    """A range query to run: PromQL and evaluation times (inclusive), `step` apart."""

    query: str
    start: dt.datetime
    end: dt.datetime
    step: dt.timedelta


def _unix(when: dt.datetime) -> float:
    if when.tzinfo is None:
        raise ValueError(f"{when!r} has no time zone; pass UTC times")
    return when.timestamp()


def _format_time(seconds: float) -> str:
    return f"{seconds:.3f}"


def split_range(start: float, end: float, step: float, max_points: int, chunk: float) -> list[tuple[float, float]]:
    """Cut evaluation times start, start+step … ≤ end into pieces of at most `max_points` points
    and at most `chunk` seconds; every evaluation time falls in exactly one piece."""
    if step <= 0:
        raise ValueError("step must be positive")
    if end < start:
        return []
    total = math.floor((end - start) / step + 1e-9) + 1
    per_piece = max(1, min(max_points, math.floor(chunk / step + 1e-9) or 1))
    pieces = []
    for first in range(0, total, per_piece):
        last = min(total, first + per_piece) - 1
        pieces.append((start + first * step, start + last * step))
    return pieces


class PrometheusClient:
    """Synchronous client; `query_ranges` runs many range queries concurrently (bounded)."""

    def __init__(self, settings: PrometheusSettings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.warnings_seen: list[str] = []
        """Every distinct warning any answer carried (a partial answer from Thanos, Mimir …), in order."""
        self.infos_seen: list[str] = []
        """Every distinct info annotation (Prometheus 3 `infos`, e.g. "metric might not be a counter"), in order."""
        self._sleep = time.sleep
        self._clock = time.monotonic
        self._started = self._clock()
        self._lock = threading.Lock()
        self._retries_spent = 0
        self._requests = 0
        self._planned = 0
        self._answered = 0
        self._in_flight = 0
        self._last_progress = self._started
        self._last_heard = self._started
        self._failed = threading.Event()
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None
        headers = {"Accept": "application/json", **settings.headers}
        auth: httpx.Auth | None = None
        if settings.bearer_token_file is not None:
            token = _read_secret(settings.bearer_token_file, "bearer token", "--bearer-token-file", header=True)
            headers["Authorization"] = f"Bearer {token}"
        if settings.basic_auth_user is not None:
            password = ""
            if settings.basic_auth_password_file is not None:
                password = _read_secret(
                    settings.basic_auth_password_file, "basic-auth password", "--basic-auth-password-file", header=False
                )
            auth = httpx.BasicAuth(settings.basic_auth_user, password)
        verify: bool | str = True
        if settings.insecure_skip_verify:
            verify = False
        elif settings.ca_bundle is not None:
            if not settings.ca_bundle.is_file():
                raise PrometheusError(
                    f"CA bundle {settings.ca_bundle} does not exist",
                    server=settings.url,
                    hint="point --ca-bundle at a PEM file",
                )
            verify = _ssl_context(settings.ca_bundle, settings.url)
        self._http = httpx.Client(
            base_url=settings.url,
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=settings.timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
        )

    def close(self) -> None:
        self._closed.set()
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public API

    def query(self, query: str, at: dt.datetime | None = None) -> QueryResult:
        """Instant query, evaluated at `at` (default: now)."""
        params = {**self.settings.query_params, "query": query}
        if at is not None:
            params["time"] = _format_time(_unix(at))
        data, warnings = self._get("/api/v1/query", params, query)
        result = QueryResult(query=query, warnings=warnings)
        result.series = _parse_result(data, query, self.settings.url)
        self._note_warnings(warnings)
        return result

    def query_range(self, query: str, start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> QueryResult:
        """Range query over evaluation times start … end (inclusive) every `step`, split into pieces."""
        return self.query_ranges([RangeQuery(query, start, end, step)])[0]

    def query_ranges(self, queries: Sequence[RangeQuery]) -> list[QueryResult]:
        """Run every query (each split into pieces) with bounded concurrency; every series of each.

        All pieces run before any error is raised, so one rejected query reports together with
        the others; the first failure is raised with a count of the rest. Once the server itself has
        failed (after retries, or at the run's deadline) the pieces not yet sent are skipped.
        """
        results = [QueryResult(query=q.query) for q in queries]
        pieces_by_query: list[list[list[Series]]] = [[] for _ in queries]

        def keep(index: int, series: list[Series], warnings: list[str]) -> None:
            for warning in warnings:
                if warning not in results[index].warnings:
                    results[index].warnings.append(warning)
            pieces_by_query[index].append(series)

        self.stream_ranges(queries, keep)
        for result, pieces in zip(results, pieces_by_query, strict=True):
            result.series = _merge_pieces(pieces)
        return results

    def stream_ranges(
        self, queries: Sequence[RangeQuery], consume: Callable[[int, list[Series], list[str]], None]
    ) -> None:
        """Run every query, split into pieces, and hand each piece's series to `consume(query index,
        series, warnings)` as soon as it and every piece before it are in — in a fixed order (query by
        query, piece by piece in time), so sums built from the pieces are the same on every run.

        Nothing but the pieces still waiting for an earlier one is held, which is what keeps a month of
        a large cluster in bounded memory. Each answer is parsed in the worker that fetched it. Every
        piece runs even after one fails; then the first failure is raised with a count of the rest.
        """
        jobs: list[tuple[int, str, dict[str, str]]] = []
        self._failed.clear()
        for index, item in enumerate(queries):
            step = item.step.total_seconds()
            pieces = split_range(
                _unix(item.start),
                _unix(item.end),
                step,
                self.settings.max_points,
                self.settings.chunk.total_seconds(),
            )
            for first, last in pieces:
                params = {
                    **self.settings.query_params,
                    "query": item.query,
                    "start": _format_time(first),
                    "end": _format_time(last),
                    "step": f"{step:g}",
                }
                jobs.append((index, item.query, params))
        with self._lock:
            self._planned += len(jobs)

        def run(job: tuple[int, str, dict[str, str]]) -> tuple[list[Series], list[str]] | PrometheusError | None:
            if self._failed.is_set():  # the server failed for good (see _get): the run fails, send no more
                return None
            try:
                data, warnings = self._get("/api/v1/query_range", job[2], job[1])
                return _parse_result(data, job[1], self.settings.url), warnings
            except PrometheusError as error:
                return error

        failures: list[PrometheusError] = []
        skipped = 0
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for (index, _, _), answer in zip(jobs, pool.map(run, jobs), strict=True):
                if answer is None:
                    skipped += 1
                elif isinstance(answer, PrometheusError):
                    failures.append(answer)
                elif not failures:
                    self._note_warnings(answer[1])
                    consume(index, *answer)
        if failures:
            first = failures[0]
            notes = []
            if len(failures) > 1:
                notes.append(f"{len(failures) - 1} more request(s) failed as well")
            if skipped:
                notes.append(f"{skipped} request(s) not sent after the failure")
            if notes:
                first.args = (f"{first.args[0]}\n  ({'; '.join(notes)})",)
            raise first

    def label_values(self, label: str, match: Sequence[str], start: dt.datetime, end: dt.datetime) -> list[str]:
        """Values of `label` on the series selected by `match` in [start, end] (`/api/v1/label/<name>/values`).

        Answered from the index, so it is cheap even over a month; the server may round the time range
        to its blocks, so use it for hints (which values exist), never for figures."""
        # QueryParams is a Mapping that keeps the repeated match[] parameters.
        params = httpx.QueryParams(
            [("match[]", m) for m in match] + [("start", _format_time(_unix(start))), ("end", _format_time(_unix(end)))]
        )
        query = f"label values of {label} for {', '.join(match)}"
        data, warnings = self._get(f"/api/v1/label/{label}/values", params, query)
        self._note_warnings(warnings)
        if not isinstance(data, list):
            raise PrometheusResponseError(
                "malformed answer: label values are not a list",
                query=query,
                server=self.settings.url,
                hint="a proxy may have altered the answer; query the Prometheus API directly",
            )
        return sorted(str(value) for value in data)

    def _note_infos(self, infos: Sequence[str]) -> None:
        """Keep and show each distinct info annotation once; infos never make an answer partial."""
        with self._lock:
            new = [info for info in dict.fromkeys(infos) if info not in self.infos_seen]
            self.infos_seen.extend(new)
        for info in new:
            progress_log.info("Prometheus info (shown only, not a warning; billing goes on): %s", info)

    def _note_warnings(self, warnings: Sequence[str]) -> None:
        for warning in warnings:
            if warning not in self.warnings_seen:
                self.warnings_seen.append(warning)

    def build_version(self) -> str | None:
        """The server's version from /api/v1/status/buildinfo, or None if it does not say (Thanos, Mimir).

        `settings.promql_version`, when set, is the answer: a Thanos Querier reports its own version.
        """
        if self.settings.promql_version:
            return self.settings.promql_version
        try:
            data, _ = self._get("/api/v1/status/buildinfo", {}, "(buildinfo)")
        except PrometheusQueryError:
            return None
        version = data.get("version") if isinstance(data, dict) else None
        return str(version) if version else None

    # ------------------------------------------------------------------ transport

    def _get(self, path: str, params: Mapping[str, str], query: str) -> tuple[Any, list[str]]:
        """GET with retries; returns (data, warnings) of a `success` answer or raises PrometheusError.

        Each attempt may take `timeout` seconds of wall-clock time, body included; retries come out of
        the run's retry budget (`retry_budget` + `retry_share` × requests), a run that hears nothing from
        the server for `stall` seconds fails, and nothing outlives the run's deadline."""
        with self._lock:
            self._requests += 1
            self._in_flight += 1
        self._start_ticker()
        try:
            return self._attempts(path, params, query)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _attempts(self, path: str, params: Mapping[str, str], query: str) -> tuple[Any, list[str]]:
        server = self.settings.url
        attempts = self.settings.retries + 1
        last_error: PrometheusError | None = None
        for attempt in range(attempts):
            if attempt:
                budget = self._take_retry()
                if budget is not None:
                    assert last_error is not None
                    raise self._out_of_retries(last_error, attempt, budget)
                delay = self.settings.backoff * 2 ** (attempt - 1)
                remaining = self._remaining()
                if remaining is not None and remaining <= delay:
                    raise self._deadline_error(query)
                self._sleep(delay)
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise self._deadline_error(query)
            silence = self._silence_left()
            limit = min(x for x in (self.settings.timeout, remaining, silence) if x is not None)
            started = self._clock()
            try:
                response = self._fetch(path, params, max(limit, 0.001))
            except (httpx.TimeoutException, _Overrun) as e:
                log.debug("GET %s %s: no whole answer within %.1f s", path, query, limit)
                if remaining is not None and limit == remaining and limit < self.settings.timeout:
                    raise self._deadline_error(query) from e
                silence = self._silence_left()
                if silence is not None and silence <= 0:
                    raise self._stall_error(query) from e
                last_error = PrometheusUnreachableError(
                    f"Prometheus did not answer in full within {limit:g} s after {attempt + 1} attempt(s)",
                    query=query,
                    server=server,
                    hint="raise --timeout, or query shorter pieces (smaller --chunk-hours)",
                )
                last_error.__cause__ = e
                continue
            except httpx.TransportError as e:
                log.debug("GET %s %s: %s", path, query, e)
                last_error = PrometheusUnreachableError(
                    f"cannot reach {server} after {attempt + 1} attempt(s): {e}",
                    query=query,
                    server=server,
                    hint="check --prometheus (is Prometheus running and listening at that address?)",
                )
                last_error.__cause__ = e
                continue
            with self._lock:
                self._last_heard = self._clock()
            log.debug(
                "GET %s %s: HTTP %d, %d bytes in %.2f s",
                path,
                query,
                response.status_code,
                len(response.content),
                self._clock() - started,
            )
            if response.status_code >= 500:
                last_error = _status_error(response, query, server, attempt + 1)
                if response.status_code == 500 and attempt >= RETRIES_AFTER_500:
                    break
                continue
            data, warnings, infos = _decode(response, query, server)
            self._note_infos(infos)
            self._answered_one()
            return data, warnings
        assert last_error is not None
        self._failed.set()  # a server failing after retries fails every piece: others need not wait for it
        raise last_error

    def _fetch(self, path: str, params: Mapping[str, str], limit: float) -> httpx.Response:
        """One GET whose headers and body arrive within `limit` seconds of wall-clock time: the body is
        read in pieces and the clock checked after each, so a server trickling bytes cannot hold a run."""
        until = self._clock() + limit
        with self._http.stream("GET", path, params=params, timeout=limit) as response:
            body = bytearray()
            for piece in response.iter_bytes():  # as the network delivers: no buffering to a size
                body += piece
                if self._clock() > until:
                    raise _Overrun(f"body still arriving after {limit:g} s ({len(body)} bytes so far)")
            headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-encoding"]
            return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)

    def _remaining(self) -> float | None:
        if self.settings.deadline is None:
            return None
        return self.settings.deadline - (self._clock() - self._started)

    def _retry_budget(self) -> int:
        """Retries the run may spend: a fixed floor plus a share of the requests it sends (planned or sent)."""
        requests = max(self._planned, self._requests)
        return self.settings.retry_budget + math.ceil(self.settings.retry_share * requests - 1e-9)

    def _take_retry(self) -> int | None:
        """Spend one retry of the run's budget; None when granted, else the budget that is spent."""
        with self._lock:
            budget = self._retry_budget()
            if self._retries_spent >= budget:
                return budget
            self._retries_spent += 1
            return None

    def _out_of_retries(self, error: PrometheusError, attempts: int, budget: int) -> PrometheusError:
        """The request's last error, saying that the run's retry budget (not the server on every attempt) ended it."""
        self._failed.set()
        requests = max(self._planned, self._requests)
        kind = type(error)
        first_line = str(error.args[0]).split("\n", 1)[0].split(" (server ", 1)[0]
        return kind(
            f"{first_line}; no retries left: the run spent all {budget} retries it may "
            f"({self.settings.retry_budget} + {self.settings.retry_share:g} per request × {requests} requests) "
            f"after {self._answered} answered",
            query=error.query,
            server=error.server,
            hint="Prometheus fails often: raise --retry-share (or --retry-budget) to ride it out, and look at its "
            "logs for why it answers 5xx",
        )

    def _silence_left(self) -> float | None:
        """Seconds before the run has heard nothing from the server for `stall` seconds (None: no limit)."""
        if self.settings.stall is None:
            return None
        return self.settings.stall - (self._clock() - self._last_heard)

    def _stall_error(self, query: str) -> PrometheusUnreachableError:
        return self._run_failed(
            f"Prometheus has not answered anything for {self.settings.stall:g} s ({self._answered} of "
            f"{self._sent()} request(s) answered): it looks hung",
            query,
            "check that Prometheus is healthy; if its single queries really take longer, raise --stall "
            "(or lower --chunk-hours)",
        )

    def _sent(self) -> int:
        """Requests of the run so far: planned pieces, single requests sent, whichever is more."""
        return max(self._planned, self._requests, self._answered)

    def _run_failed(self, message: str, query: str, hint: str) -> PrometheusUnreachableError:
        """The run's end for want of time: no further piece is sent (`_failed`)."""
        self._failed.set()
        return PrometheusUnreachableError(message, query=query, server=self.settings.url, hint=hint)

    def _start_ticker(self) -> None:
        """A thread printing progress while requests wait, so a hung server is not silence on the terminal."""
        with self._lock:
            if self._ticker is not None:
                return
            self._ticker = threading.Thread(target=self._tick, name="prometheus-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(max(PROGRESS_EVERY, 1.0)):
            with self._lock:
                now = self._clock()
                if not self._in_flight or now - self._last_progress < PROGRESS_EVERY:
                    continue
                self._last_progress = now
                answered, planned = self._answered, self._sent()
                waiting = now - self._last_heard
            progress_log.info(
                "Prometheus: %d of %d requests answered in %.0f s; no answer for %.0f s",
                answered,
                planned,
                now - self._started,
                waiting,
            )

    def _deadline_error(self, query: str) -> PrometheusUnreachableError:
        return self._run_failed(
            f"the run's deadline of {self.settings.deadline:g} s passed after {self._answered} of "
            f"{self._sent()} request(s) were answered",
            query,
            "raise --deadline, or make Prometheus answer faster (smaller --chunk-hours, fewer --match series)",
        )

    def _answered_one(self) -> None:
        with self._lock:
            self._answered += 1
            now = self._clock()
            if now - self._last_progress < PROGRESS_EVERY:
                return
            self._last_progress = now
            answered, planned = self._answered, max(self._planned, self._answered)
        progress_log.info("Prometheus: %d of %d requests answered in %.0f s", answered, planned, now - self._started)


class _Overrun(Exception):
    """A response body did not arrive within the request's wall-clock limit."""


def _ssl_context(bundle: Path, server: str) -> ssl.SSLContext:
    """An SSL context trusting the CAs of `bundle`; a file that is not PEM is a clear error."""
    try:
        return ssl.create_default_context(cafile=str(bundle))
    except (ssl.SSLError, OSError, ValueError) as e:
        raise PrometheusError(
            f"CA bundle {bundle} is not a PEM file of certificates ({e})",
            server=server,
            hint="point --ca-bundle at a PEM file (-----BEGIN CERTIFICATE----- …), e.g. the cluster's ca.crt",
        ) from e


def _read_secret(path: Path, what: str, flag: str, *, header: bool) -> str:
    """The secret a file holds alone on one line (a final newline allowed). Any other shape is an error that
    never shows the content: a second line would otherwise reach a header and be printed in httpx's error.
    `header`: the secret goes into a header as it is (a bearer token), so only visible ASCII is allowed; a
    basic-auth password may hold spaces and UTF-8 (it travels base64-encoded)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PrometheusError(f"cannot read the {what} file {path}: {e.strerror}", hint=f"check {flag}") from e
    shape = "printable ASCII without spaces" if header else "UTF-8 text"
    hint = f"write the {what} alone on one line of {path} ({shape}), or point {flag} at such a file"
    body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    if not body.strip():
        raise PrometheusError(f"the {what} file {path} is empty", hint=hint)
    lines = len(body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    if lines > 1:
        raise PrometheusError(f"the {what} file {path} has {lines} lines, not one (content not shown)", hint=hint)
    try:
        text = body.decode("ascii" if header else "utf-8")
    except UnicodeDecodeError as e:
        raise PrometheusError(
            f"the {what} file {path} is not {shape} at byte {e.start + 1} (content not shown)", hint=hint
        ) from None
    bad = next((i for i, c in enumerate(text) if ord(c) < 0x20 or ord(c) == 0x7F or (header and c == " ")), None)
    if bad is not None:
        raise PrometheusError(
            f"the {what} file {path} has a space or control character at character {bad + 1} (content not shown)",
            hint=hint,
        )
    return text


def _api_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return _snippet(response.text)
    if isinstance(body, dict) and body.get("error"):
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return _snippet(response.text)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text[:200] + ("…" if len(text) > 200 else "")


CHUNK_HINT = "the piece of time one request covers is too heavy for this Prometheus: lower --chunk-hours"


def _too_heavy(detail: str) -> bool:
    """Prometheus's own words for a query too big for its limits (promql/engine.go: ErrTooManySamples
    "query processing would load too many samples into memory in …", ErrQueryTimeout "query timed out in …";
    web/api/v1/api.go answers them as errorType execution (422) and timeout (503))."""
    lowered = detail.lower()
    return any(
        words in lowered
        for words in ("too many samples", "query timed out", "timeout:", "context deadline exceeded", "max samples")
    )


def _status_error(response: httpx.Response, query: str, server: str, attempts: int = 1) -> PrometheusError:
    status = response.status_code
    detail = _api_error(response)
    if _too_heavy(detail):
        failed = f"failed with HTTP {{}} on {attempts} attempt(s)"
        what = failed if status >= 500 else "gave up on the query with HTTP {}"
        return PrometheusQueryError(
            f"Prometheus {what.format(status)}: {detail}", query=query, server=server, hint=CHUNK_HINT
        )
    if status in (401, 403):
        return PrometheusQueryError(
            f"Prometheus refused the request with HTTP {status}: {detail}",
            query=query,
            server=server,
            hint="check the bearer token / basic-auth settings and the tenant header (X-Scope-OrgID)",
        )
    if status == 404:
        return PrometheusQueryError(
            f"HTTP 404 at {response.request.url.path}: this is not the Prometheus HTTP API",
            query=query,
            server=server,
            hint="point --prometheus at the API root (e.g. http://host:9090, or a Thanos/Mimir prefix such as "
            "http://host/prometheus)",
        )
    if status >= 500:
        return PrometheusQueryError(
            f"Prometheus failed with HTTP {status} on {attempts} attempt(s): {detail}",
            query=query,
            server=server,
            hint="Prometheus (or a proxy in front of it) fails: check its health and logs; raise --retries if it "
            "recovers within seconds",
        )
    return PrometheusQueryError(
        f"Prometheus rejected the query with HTTP {status}: {detail}",
        query=query,
        server=server,
        hint="check the extra label matchers (--match) and the metric names; retrying will not help",
    )


def _decode(response: httpx.Response, query: str, server: str) -> tuple[Any, list[str], list[str]]:
    if response.status_code >= 400:
        raise _status_error(response, query, server)
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise PrometheusResponseError(
            f"answer (HTTP {response.status_code}) is not JSON: {_snippet(response.text)!r}",
            query=query,
            server=server,
            hint="check that --prometheus points at the Prometheus API, not a web UI or a proxy's login page",
        ) from e
    if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
        raise PrometheusResponseError(
            f"answer is JSON but not a Prometheus API answer: {_snippet(response.text)!r}",
            query=query,
            server=server,
            hint="check that --prometheus points at the Prometheus API root",
        )
    if body["status"] == "error":
        detail = f"{body.get('errorType', 'error')}: {body.get('error', '')}"
        raise PrometheusQueryError(
            f"Prometheus reported an error: {detail}",
            query=query,
            server=server,
            hint=CHUNK_HINT if _too_heavy(detail) else "check the extra label matchers (--match) and the metric names",
        )
    # Prometheus (2.52 and later, and 3.x) returns two arrays beside the data (web/api/v1/api.go, Response:
    # `warnings` and `infos`; https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview):
    # warnings are "errors that do not inhibit the request execution" — a partial answer, which blocks
    # billing — and infos are "info-level annotations … for potential query issues that may or may not be
    # false positives" (promql/annotations: "PromQL info: metric might not be a counter …"): shown, never
    # blocking.
    warnings = [str(w) for w in body.get("warnings") or []]
    infos = [str(i) for i in body.get("infos") or []]
    return body.get("data"), warnings, infos


def _parse_result(data: Any, query: str, server: str) -> list[Series]:
    """Vector or matrix `data` → Series; anything else is a PrometheusResponseError."""

    def broken(why: str) -> PrometheusResponseError:
        return PrometheusResponseError(
            f"malformed answer: {why}",
            query=query,
            server=server,
            hint="a proxy may have altered the answer; query the Prometheus API directly",
        )

    if not isinstance(data, dict) or "result" not in data:
        raise broken("no data.result")
    kind = data.get("resultType")
    if kind not in ("matrix", "vector"):
        raise broken(f"result type {kind!r}, expected matrix or vector")
    series: list[Series] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for item in data["result"] or []:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
            raise broken("a result has no metric labels")
        labels = tuple(sorted((str(k), str(v)) for k, v in item["metric"].items()))
        if labels in seen:
            # One Prometheus keys result series by label set (web/api/v1/api.go writes one entry each); the
            # same set twice comes from a federation or a Thanos Querier over replicas without deduplication.
            # Summing both would bill the series twice, keeping one would guess which copy is right.
            shown = "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"
            raise PrometheusResponseError(
                f"the answer holds the series {shown} more than once: summing it would count it twice",
                query=query,
                server=server,
                hint="deduplicate replicas before billing: point --prometheus at one replica, or at a Thanos Querier "
                "started with --query.replica-label (deduplication on); on a federating Prometheus drop the second "
                "copy of the series",
            )
        seen.add(labels)
        try:
            if kind == "matrix":
                points = item.get("values") or []
                if item.get("histograms"):
                    raise broken("native histograms are not usage series")
            else:
                points = [item["value"]]
            pairs = np.array(points, dtype=object).reshape(-1, 2)
            timestamps = pairs[:, 0].astype(np.float64)
            values = pairs[:, 1].astype(np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise broken(f'a point is not [time, "value"]: {e}') from e
        series.append(Series(labels=item["metric"], timestamps=timestamps, values=values))
    return series


def _merge_pieces(pieces: list[list[Series]]) -> list[Series]:
    """Join the pieces of a split range query back into one series per label set."""
    if len(pieces) == 1:
        return pieces[0]
    merged: dict[tuple[tuple[str, str], ...], list[Series]] = {}
    for piece in pieces:
        for item in piece:
            merged.setdefault(tuple(sorted(item.labels.items())), []).append(item)
    out = []
    for parts in merged.values():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        timestamps = np.concatenate([p.timestamps for p in parts])
        values = np.concatenate([p.values for p in parts])
        order = np.argsort(timestamps, kind="stable")
        out.append(Series(labels=parts[0].labels, timestamps=timestamps[order], values=values[order]))
    return out
