"""A small client for the Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`).

Why not a generic client: chargeback needs four things generic clients leave out —
retries with exponential backoff on 5xx / timeouts / connection errors (never on 4xx: a bad
query stays bad); Prometheus `warnings` (partial answers from Thanos, Mimir, Cortex …) collected
and returned rather than dropped; range queries split so that no series exceeds the server's
11,000 points per query and no request covers more than `chunk` of time (month-long windows time
out on busy servers); and errors that name the query, the server and how to fix it.

The JSON is parsed here into `Series` (labels + numpy arrays); nothing downstream sees JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import (
    PrometheusError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnreachableError,
)

MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses range queries whose result would have more points per series than this."""


class PrometheusSettings(BaseModel):
    """Where Prometheus is and how to talk to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field("http://127.0.0.1:9090", description="Base URL of the Prometheus (or Thanos/Mimir) API.")
    bearer_token_file: Path | None = Field(None, description="File holding a bearer token sent as Authorization.")
    basic_auth_user: str | None = Field(None, description="User for HTTP basic auth.")
    basic_auth_password_file: Path | None = Field(None, description="File holding the basic-auth password.")
    ca_bundle: Path | None = Field(None, description="PEM bundle of CAs that sign the server's certificate.")
    insecure_skip_verify: bool = Field(False, description="Do not verify the server certificate (testing only).")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. X-Scope-OrgID for Mimir/Cortex tenants."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds to wait for one answer before retrying.")
    retries: int = Field(3, ge=0, le=10, description="Retries after a 5xx, a timeout or a connection error.")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubles on each further one.")
    max_points: int = Field(
        MAX_POINTS_PER_SERIES, ge=2, le=MAX_POINTS_PER_SERIES, description="Most points per series in one request."
    )
    chunk: dt.timedelta = Field(
        dt.timedelta(days=1), description="Longest time span of one range request; longer ranges are split."
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
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL; write e.g. http://127.0.0.1:9090")
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
        self._sleep = time.sleep
        headers = {"Accept": "application/json", **settings.headers}
        auth: httpx.Auth | None = None
        if settings.bearer_token_file is not None:
            token = _read_secret(settings.bearer_token_file, "bearer token", "--bearer-token-file")
            headers["Authorization"] = f"Bearer {token}"
        if settings.basic_auth_user is not None:
            password = ""
            if settings.basic_auth_password_file is not None:
                password = _read_secret(
                    settings.basic_auth_password_file, "basic-auth password", "--basic-auth-password-file"
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
            verify = str(settings.ca_bundle)
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
        return result

    def query_range(self, query: str, start: dt.datetime, end: dt.datetime, step: dt.timedelta) -> QueryResult:
        """Range query over evaluation times start … end (inclusive) every `step`, split into pieces."""
        return self.query_ranges([RangeQuery(query, start, end, step)])[0]

    def query_ranges(self, queries: Sequence[RangeQuery]) -> list[QueryResult]:
        """Run every query (each split into pieces) with bounded concurrency.

        All pieces run before any error is raised, so one failing query reports together with
        the others; the first failure is raised with a count of the rest.
        """
        jobs: list[tuple[int, str, dict[str, str]]] = []
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

        def run(job: tuple[int, str, dict[str, str]]) -> tuple[Any, list[str]] | PrometheusError:
            try:
                return self._get("/api/v1/query_range", job[2], job[1])
            except PrometheusError as error:
                return error

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            answers = list(pool.map(run, jobs))

        failures = [a for a in answers if isinstance(a, PrometheusError)]
        if failures:
            first = failures[0]
            if len(failures) > 1:
                first.args = (f"{first.args[0]}\n  ({len(failures) - 1} more request(s) failed as well)",)
            raise first

        results = [QueryResult(query=q.query) for q in queries]
        pieces_by_query: list[list[list[Series]]] = [[] for _ in queries]
        for (index, query, _), answer in zip(jobs, answers, strict=True):
            data, warnings = answer  # type: ignore[misc]
            for warning in warnings:
                if warning not in results[index].warnings:
                    results[index].warnings.append(warning)
            pieces_by_query[index].append(_parse_result(data, query, self.settings.url))
        for result, pieces in zip(results, pieces_by_query, strict=True):
            result.series = _merge_pieces(pieces)
        return results

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
        """GET with retries; returns (data, warnings) of a `success` answer or raises PrometheusError."""
        server = self.settings.url
        attempts = self.settings.retries + 1
        last_error: PrometheusError | None = None
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.settings.backoff * 2 ** (attempt - 1))
            try:
                response = self._http.get(path, params=params)
            except httpx.TimeoutException as e:
                last_error = PrometheusUnreachableError(
                    f"Prometheus did not answer within {self.settings.timeout:g} s after {attempt + 1} attempt(s)",
                    query=query,
                    server=server,
                    hint="raise --timeout, or query shorter pieces (smaller --chunk-hours)",
                )
                last_error.__cause__ = e
                continue
            except httpx.TransportError as e:
                last_error = PrometheusUnreachableError(
                    f"cannot reach {server} after {attempt + 1} attempt(s): {e}",
                    query=query,
                    server=server,
                    hint="check --prometheus (is Prometheus running and listening at that address?)",
                )
                last_error.__cause__ = e
                continue
            if response.status_code >= 500:
                last_error = _status_error(response, query, server)
                continue
            return _decode(response, query, server)
        assert last_error is not None
        raise last_error


def _read_secret(path: Path, what: str, flag: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise PrometheusError(f"cannot read the {what} file {path}: {e.strerror}", hint=f"check {flag}") from e


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


def _status_error(response: httpx.Response, query: str, server: str) -> PrometheusError:
    status = response.status_code
    detail = _api_error(response)
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
            f"Prometheus failed with HTTP {status} on every attempt: {detail}",
            query=query,
            server=server,
            hint="a timeout or too many samples usually means the piece is too long: lower --chunk-hours",
        )
    return PrometheusQueryError(
        f"Prometheus rejected the query with HTTP {status}: {detail}",
        query=query,
        server=server,
        hint="check the extra label matchers (--match) and the metric names; retrying will not help",
    )


def _decode(response: httpx.Response, query: str, server: str) -> tuple[Any, list[str]]:
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
        raise PrometheusQueryError(
            f"Prometheus reported an error: {body.get('errorType', 'error')}: {body.get('error', '')}",
            query=query,
            server=server,
            hint="check the extra label matchers (--match) and the metric names",
        )
    warnings = [str(w) for w in body.get("warnings") or []] + [str(i) for i in body.get("infos") or []]
    return body.get("data"), warnings


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
    for item in data["result"] or []:
        if not isinstance(item, dict) or not isinstance(item.get("metric"), dict):
            raise broken("a result has no metric labels")
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
