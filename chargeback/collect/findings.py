"""Data findings: what the metric-contract doctor found about the series a period is billed from.

A finding is a fact about the data of one cluster, with a concrete fix. Its severity says what it
does to the bill:

* `error` — a figure would be silently wrong (a required series missing, no data, a period not
  over, a partial answer): `chargeback invoice` refuses unless `--allow-incomplete`;
* `warning` — billed, but the invoice says so (duplicates de-duplicated, a silent node, unmounted
  claims, hostNetwork pods whose network is not measured);
* `info` — worth knowing (detected scrape intervals, the runtime's sandbox naming).

Error and warning findings are printed on every invoice they touch: those naming namespaces on
the invoices holding one of them, cluster-wide ones on every invoice with a namespace in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES: tuple[str, ...] = (ERROR, WARNING, INFO)
"""Most severe first."""

CODES: tuple[str, ...] = (
    "no-namespace-series",
    "host-network-pods",
    "sandbox-container-pod",
    "duplicate-targets",
    "silent-target",
    "unreported-containers",
    "unmounted-claims",
    "missing-series:<metric>",
    "missing-label:<label>",
    "missing-root-cgroup",
    "nan-samples",
    "no-data",
    "period-not-over",
    "period-in-future",
    "partial-response",
    "retention-short",
    "scrape-interval",
    "undeclared-caller",
    "unknown-callers",
    "no-call-series",
)
"""Every finding code (`<metric>`/`<label>` stand for the name); the scenario generators plant them by code."""


@dataclass(frozen=True)
class Finding:
    """One fact about a cluster's data: what and where (message), what to do (fix)."""

    severity: str
    code: str
    cluster: str
    message: str
    fix: str
    namespaces: tuple[str, ...] = ()
    """Namespaces whose figures it touches; empty: the whole cluster."""
    capability: str = ""
    """Capability-call findings (undeclared-caller, unknown-callers): the capability called."""
    provider: str = ""
    """Capability-call findings: the namespace exposing it."""
    calls: int = 0
    """Capability-call findings: the calls counted in the examined hours (what the exporter's gauge shows)."""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    @property
    def on_invoice(self) -> bool:
        """Errors (billed only with --allow-incomplete) and warnings are printed on invoices; infos are not."""
        return self.severity in (ERROR, WARNING)

    def touches(self, cluster: str, namespaces: Iterable[str]) -> bool:
        """Whether the figures of these namespaces of `cluster` are affected."""
        if cluster != self.cluster:
            return False
        return not self.namespaces or bool(set(self.namespaces) & set(namespaces))

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "cluster": self.cluster,
            "message": self.message,
            "fix": self.fix,
            "namespaces": list(self.namespaces),
        }

    def line(self) -> str:
        """One line for a terminal or a log: `[cluster] severity code: message`."""
        return f"[{self.cluster}] {self.severity} {self.code}: {self.message}"


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """By cluster, most severe first, then code: the order every output uses."""
    return sorted(findings, key=lambda f: (f.cluster, SEVERITIES.index(f.severity), f.code, f.message))


def errors_of(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


def findings_for(findings: Sequence[Finding], pairs: Iterable[tuple[str, str]]) -> list[Finding]:
    """The invoice findings that touch any of these (cluster, namespace) pairs."""
    by_cluster: dict[str, set[str]] = {}
    for cluster, namespace in pairs:
        by_cluster.setdefault(cluster, set()).add(namespace)
    return [
        f
        for f in sort_findings(findings)
        if f.on_invoice and any(f.touches(cluster, names) for cluster, names in by_cluster.items())
    ]


BILL_ANYWAY = "to bill anyway pass --allow-incomplete (the findings are then printed on every affected invoice)"
"""How a command with --allow-incomplete (invoice, idle, close) goes on despite the findings."""


def refusal_text(findings: Sequence[Finding], period: str, anyway: str = BILL_ANYWAY) -> str:
    """The message of a refused run: every error finding with its fix, and `anyway`: what the command offers
    beyond fixing the data (only commands with --allow-incomplete offer billing anyway)."""
    errors = sort_findings(errors_of(findings))
    lines = [f"refusing to bill {period}: {len(errors)} data finding(s) would make figures silently wrong"]
    for finding in errors:
        lines.append(f"  {finding.line()}")
        lines.append(f"    fix: {finding.fix}")
    lines.append(f"  run `chargeback doctor` for every finding; {anyway}")
    return "\n".join(lines)
