"""PromQL templates: escaping, extra matchers, the hour window per server version."""

from __future__ import annotations

import pytest

from chargeback.collect import promql
from chargeback.collect.promql import LabelMatcher, MatcherError, escape_label_value, hour_window, render
from chargeback.collect.usage import usage_queries


def test_escape_label_value_handles_backslash_quote_and_newline() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert escape_label_value("dc1") == "dc1"


def test_matchers_are_injected_into_every_selector_and_escaped() -> None:
    tricky = LabelMatcher("cluster", 'dc1"} or vector(1) #')
    for name, query in usage_queries("59m59s999ms", [tricky]).items():
        selectors = query.count("{")
        assert query.count('cluster="dc1\\"} or vector(1) #"') == selectors, name
    # The value stays inside its string literal: no second expression appears.
    assert 'or vector(1) #"' in render(promql.CPU_USED, "1h", (tricky,))


def test_selectors_without_other_matchers_get_the_extra_ones_bare() -> None:
    query = render(
        promql.KUBELET_VOLUME_SCRAPES, "1h", (LabelMatcher("cluster", "dc1"), LabelMatcher("env", "p", "!="))
    )
    assert query == 'max(count_over_time(kubelet_volume_stats_used_bytes{cluster="dc1",env!="p"}[1h]))'
    assert render(promql.KUBELET_VOLUME_SCRAPES, "1h") == "max(count_over_time(kubelet_volume_stats_used_bytes{}[1h]))"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('cluster="dc1"', LabelMatcher("cluster", "dc1")),
        ("cluster=dc1", LabelMatcher("cluster", "dc1")),
        ('env=~"prod|staging"', LabelMatcher("env", "prod|staging", "=~")),
        ('team!="a\\"b"', LabelMatcher("team", 'a"b', "!=")),
        ("zone !~ eu-.*", LabelMatcher("zone", "eu-.*", "!~")),
    ],
)
def test_matchers_parse_from_the_command_line(text: str, expected: LabelMatcher) -> None:
    assert LabelMatcher.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cluster", "is not a label matcher"),
        ('1cluster="x"', "is not a label matcher"),
        ('__name__="up"', "may not select on __name__"),
    ],
)
def test_bad_matchers_are_refused(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        LabelMatcher.parse(text)


def test_hour_window_follows_the_server_version() -> None:
    assert hour_window("2.42.0+ds") == "59m59s999ms"
    assert hour_window("v2.53.1") == "59m59s999ms"
    assert hour_window("3.1.0") == "1h"
    assert hour_window(None) == "59m59s999ms"


def test_every_query_is_aggregated_on_the_server() -> None:
    for name, query in usage_queries("1h").items():
        assert query.startswith(
            (
                "sum by (namespace",
                "min by (namespace",
                "max by (namespace",
                "count by (namespace",
                "max(",
                "max by (node)",
                "max_over_time(sum by (namespace",  # the hour's peak of a per-namespace 5-minute rate
            )
        ), name
