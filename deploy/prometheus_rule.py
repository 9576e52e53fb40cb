"""Write deploy/prometheus-rules.yaml (a PrometheusRule for the Prometheus Operator) from the plain
rules file deploy/alerting/resource-pool.rules.yaml (which `pool alerts render --out deploy/alerting` makes
from the example catalog), so both carry the same groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
PLAIN_RULES = DEPLOY / "alerting" / "resource-pool.rules.yaml"
PROMETHEUS_RULE = DEPLOY / "prometheus-rules.yaml"
HEADER = (
    "# Made from deploy/alerting/resource-pool.rules.yaml by `python deploy/prometheus_rule.py`; that file is\n"
    "# `pool alerts render --out deploy/alerting` of the example catalog: edit the catalog, not these files.\n"
)


def prometheus_rule(groups: dict[str, Any]) -> dict[str, Any]:
    """The PrometheusRule resource wrapping a plain rules document ({"groups": [...]})."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "resource-pool-chargeback",
            "labels": {"app.kubernetes.io/name": "resource-pool-chargeback", "role": "alert-rules"},
        },
        "spec": groups,
    }


def render() -> str:
    document = prometheus_rule(yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8")))
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(render(), encoding="utf-8")
