"""Settings a Thanos Querier needs: extra parameters on every query, and the PromQL version it evaluates."""

from __future__ import annotations

import datetime as dt

import httpx

from chargeback.collect import promql
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings, RangeQuery

URL = "http://127.0.0.1:9"
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
THANOS = {"dedup": "true", "partial_response": "false", "max_source_resolution": "0s"}


def recording_client(seen: list[httpx.Request], **settings: object) -> PrometheusClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/buildinfo"):
            return httpx.Response(200, json={"status": "success", "data": {"version": "0.42.4"}})
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}})

    return PrometheusClient(PrometheusSettings(url=URL, **settings), transport=httpx.MockTransport(handler))


def test_query_params_go_with_every_range_and_instant_query() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen, query_params=THANOS, chunk=dt.timedelta(hours=1)) as client:
        client.query_ranges([RangeQuery("up", T0, T0 + dt.timedelta(hours=3), dt.timedelta(hours=1))])
        client.query("up", at=T0)
    assert len(seen) >= 3
    for request in seen:
        assert {key: request.url.params[key] for key in THANOS} == THANOS
        assert request.url.params["query"] == "up"


def test_without_query_params_nothing_is_added() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen) as client:
        client.query("up", at=T0)
    assert set(seen[0].url.params) == {"query", "time"}


def test_promql_version_overrides_the_build_info_of_a_querier() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen) as client:
        assert client.build_version() == "0.42.4"  # Thanos names its own release
        assert promql.hour_window(client.build_version()) == promql.WINDOW_PROMETHEUS_2
    with recording_client(seen, promql_version="3.0") as client:
        assert promql.hour_window(client.build_version()) == promql.WINDOW_PROMETHEUS_3
