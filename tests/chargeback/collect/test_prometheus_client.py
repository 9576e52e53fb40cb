"""The Prometheus client against scripted answers (httpx.MockTransport): retries, errors, auth, splitting."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from chargeback.collect.prometheus import (
    MAX_POINTS_PER_SERIES,
    PrometheusClient,
    PrometheusSettings,
    RangeQuery,
    split_range,
)
from chargeback.errors import (
    PrometheusError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnreachableError,
)

URL = "http://127.0.0.1:9"
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
QUERY = 'sum by (namespace) (up{job="x"})'


def ok(result: list | None = None, warnings: list[str] | None = None, kind: str = "matrix") -> httpx.Response:
    body: dict = {"status": "success", "data": {"resultType": kind, "result": result or []}}
    if warnings:
        body["warnings"] = warnings
    return httpx.Response(200, json=body)


def client(handler: Callable[[httpx.Request], httpx.Response], **settings: object) -> PrometheusClient:
    prometheus = PrometheusClient(
        PrometheusSettings(url=URL, backoff=0.25, **settings), transport=httpx.MockTransport(handler)
    )
    prometheus._sleep = lambda seconds: sleeps.append(seconds)
    return prometheus


sleeps: list[float] = []


@pytest.fixture(autouse=True)
def _clear_sleeps() -> None:
    sleeps.clear()


def test_retries_5xx_with_exponential_backoff_then_succeeds() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, text="overloaded")
        return ok([{"metric": {"namespace": "a"}, "value": [1.0, "2.5"]}], kind="vector")

    result = client(handler, retries=3).query(QUERY)
    assert len(calls) == 3
    assert sleeps == [0.25, 0.5]
    assert result.series[0].labels == {"namespace": "a"}
    assert result.series[0].values.tolist() == [2.5]


def test_gives_up_after_the_retries_and_says_so() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"status": "error", "errorType": "timeout", "error": "query timed out"})

    with pytest.raises(PrometheusQueryError) as raised:
        client(handler, retries=2).query(QUERY)
    assert len(calls) == 3
    message = str(raised.value)
    assert "HTTP 503 on 3 attempt(s): timeout: query timed out" in message
    assert f"(server {URL})" in message and f"query: {QUERY}" in message
    assert "--chunk-hours" in message


def test_timeouts_and_connection_errors_are_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow", request=request)
        if len(calls) == 2:
            raise httpx.ConnectError("refused", request=request)
        return ok(kind="vector")

    assert client(handler, retries=2).query(QUERY).series == []
    assert len(calls) == 3


def test_connection_refused_everywhere_names_the_server_and_the_flag() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(PrometheusUnreachableError) as raised:
        client(handler, retries=1).query(QUERY)
    assert str(raised.value).startswith(f"cannot reach {URL} after 2 attempt(s): Connection refused")
    assert "check --prometheus" in str(raised.value)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def test_a_bad_query_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            400, json={"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
        )

    with pytest.raises(PrometheusQueryError, match=r"rejected the query with HTTP 400: bad_data: parse error") as e:
        client(handler, retries=5).query("sum(")
    assert len(calls) == 1 and sleeps == []
    assert e.value.query == "sum(" and e.value.server == URL


def test_unauthorised_points_at_the_credentials() -> None:
    with pytest.raises(PrometheusQueryError, match="HTTP 401") as raised:
        client(lambda request: httpx.Response(401, text="Unauthorized")).query(QUERY)
    assert "bearer token" in str(raised.value)


def test_warnings_are_returned_not_swallowed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return ok(warnings=["partial response: store gateway 2 unreachable"])

    result = client(handler).query_range(QUERY, T0, T0 + dt.timedelta(hours=2), dt.timedelta(hours=1))
    assert result.warnings == ["partial response: store gateway 2 unreachable"]


def test_html_instead_of_json_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html><body>Please log in</body></html>")

    with pytest.raises(PrometheusResponseError) as raised:
        client(handler).query(QUERY)
    message = str(raised.value)
    assert "is not JSON: '<html><body>Please log in</body></html>'" in message
    assert "not a web UI or a proxy's login page" in message


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"status": "success", "data": {"resultType": "matrix"}}, "no data.result"),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}, "result type 'scalar'"),
        ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}}, "point"),
        ({"hello": "world"}, "not a Prometheus API answer"),
    ],
)
def test_malformed_answers_are_errors(body: dict, why: str) -> None:
    with pytest.raises(PrometheusResponseError, match=why):
        client(lambda request: httpx.Response(200, content=json.dumps(body).encode())).query(QUERY)


def test_credentials_and_headers_are_sent(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n", encoding="utf-8")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(kind="vector")

    client(handler, bearer_token_file=token, headers={"X-Scope-OrgID": "tenant-1"}).query(QUERY)
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert seen[0].headers["X-Scope-OrgID"] == "tenant-1"
    assert seen[0].url.params["query"] == QUERY

    password = tmp_path / "password"
    password.write_text("pw", encoding="utf-8")
    client(handler, basic_auth_user="finops", basic_auth_password_file=password).query(QUERY)
    assert seen[1].headers["Authorization"] == "Basic " + __import__("base64").b64encode(b"finops:pw").decode()


def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match=r"cannot read the bearer token file .*missing: No such file") as e:
        client(lambda request: ok(), bearer_token_file=tmp_path / "missing")
    assert "fix: check --bearer-token-file" in str(e.value)


def test_split_range_keeps_every_evaluation_time_once() -> None:
    pieces = split_range(0, 3 * 86400, 15, MAX_POINTS_PER_SERIES, 10 * 86400)
    points = [p for first, last in pieces for p in range(int(first), int(last) + 1, 15)]
    assert points == list(range(0, 3 * 86400 + 1, 15))
    assert all((last - first) / 15 + 1 <= MAX_POINTS_PER_SERIES for first, last in pieces)
    assert len(pieces) == 2
    # A day chunk over a month at one hour steps: 30 pieces of 24 evaluation times.
    month = split_range(3599.999, 3599.999 + 719 * 3600, 3600, MAX_POINTS_PER_SERIES, 86400)
    assert len(month) == 30 and all(round((last - first) / 3600) + 1 == 24 for first, last in month)


def test_long_ranges_are_split_below_the_point_limit_and_merged() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        start, end, step = (float(request.url.params[k]) for k in ("start", "end", "step"))
        points = round((end - start) / step) + 1
        if points > MAX_POINTS_PER_SERIES:
            return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "exceeded"})
        values = [[start + i * step, str(i)] for i in range(points)]
        return ok([{"metric": {"namespace": "a"}, "values": values}])

    end = T0 + dt.timedelta(days=3)
    prometheus = client(handler, chunk=dt.timedelta(days=30))
    result = prometheus.query_range(QUERY, T0, end, dt.timedelta(seconds=15))
    assert len(requests) == 2
    (series,) = result.series
    assert len(series.timestamps) == 3 * 86400 // 15 + 1
    assert series.timestamps[0] == T0.timestamp() and series.timestamps[-1] == end.timestamp()
    assert (series.timestamps[1:] > series.timestamps[:-1]).all()


def test_concurrent_queries_report_every_failure_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "bad" in request.url.params["query"]:
            return httpx.Response(422, json={"status": "error", "errorType": "execution", "error": "many-to-many"})
        return ok()

    step = dt.timedelta(hours=1)
    queries = [RangeQuery(q, T0, T0 + dt.timedelta(hours=47), step) for q in ("good", "bad_one", "bad_two")]
    with pytest.raises(PrometheusQueryError) as raised:
        client(handler, concurrency=3).query_ranges(queries)
    message = str(raised.value)
    assert "query: bad_one" in message and "execution: many-to-many" in message
    assert "(3 more request(s) failed as well)" in message  # bad_one's second day, bad_two's two days


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="is not an http"):
        PrometheusSettings(url="127.0.0.1:9090")
    with pytest.raises(ValueError, match="less than or equal to 11000"):
        PrometheusSettings(max_points=20_000)
