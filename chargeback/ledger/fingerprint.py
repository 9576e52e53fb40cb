"""The fingerprint of a close: every input that decided the figures, so an auditor can say what produced them.

Catalog (content hash over every file, and the git commit when the catalog is a git checkout), the
rate-card versions in force, Prometheus (URL, server version, hash of the exact query set), data
coverage per cluster, the tool's version, who issued it and when.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import socket
import subprocess
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import LedgerError
from ..period import iso_utc
from ..rate.invoices import text
from ..rate.result import Chargeback
from .store import canonical_json, sha256_text


def catalog_hash(root: Path) -> tuple[str, int]:
    """sha256 over the sorted relative paths and contents of every file of the catalog (outside .git),
    and the number of files."""
    digest = hashlib.sha256()
    paths = sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts)
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest(), len(paths)


def _git(root: Path, *args: str) -> str | None:
    """Output of a git command in `root`, or None when it fails (not a checkout, or git absent)."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any] | None:
    """{commit, dirty, and the changed files when dirty} of the git checkout holding the catalog, or None when
    it is not in one (or git is absent): the fingerprint then says "not under version control"."""
    commit = (_git(root, "rev-parse", "--verify", "HEAD") or "").strip()
    if not commit:
        return None
    changed = uncommitted_files(root) or []
    return {"commit": commit, "dirty": bool(changed), **({"changed": changed} if changed else {})}


def uncommitted_files(root: Path) -> list[str] | None:
    """Files under `root` that differ from the checkout's HEAD (modified, added, deleted, untracked), as git names
    them; None when `root` is not in a git checkout."""
    status = _git(root, "status", "--porcelain", "--untracked-files=all", "--", ".")
    # Porcelain lines are "XY path": two status letters (a leading space when the index is unchanged), a space.
    return None if status is None else sorted(line[3:] for line in status.splitlines() if line.strip())


def refuse_dirty_catalog(root: Path) -> None:
    """A close prices a month from the catalog; the ledger records the commit, so the catalog must be that
    commit. A catalog outside git is allowed (recorded as not under version control)."""
    changed = uncommitted_files(root)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise LedgerError(
            f"catalog {root} has uncommitted changes ({shown}): the ledger records the git commit that priced the "
            "month, and these changes are in none; commit them first, or pass --allow-dirty-catalog to close anyway "
            "(the ledger then records the checkout as dirty, with these files)"
        )


def tool_version() -> str:
    try:
        return metadata.version("resource-pool")
    except metadata.PackageNotFoundError:
        return "unknown (not installed as a package)"


def issuer_identity() -> str:
    """user@host of the person or job running the close."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def coverage_per_cluster(chargeback: Chargeback) -> dict[str, dict[str, str | int]]:
    """Per cluster: namespace-hours seen in Prometheus and how many of them scrapes covered."""
    result: dict[str, dict[str, str | int]] = {}
    frame = chargeback.coverage
    for cluster in sorted(set(frame["cluster"])) if not frame.empty else []:
        rows = frame[frame["cluster"] == cluster]
        seen = int(rows["hours_seen"].sum())
        covered = Decimal(repr(float(rows["hours_covered"].sum()))).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        share = (covered / seen).quantize(Decimal("0.0001"), ROUND_HALF_EVEN) if seen else Decimal(0)
        result[cluster] = {"namespace_hours_seen": seen, "namespace_hours_covered": text(covered), "share": text(share)}
    return result


def rate_versions(chargeback: Chargeback) -> list[str]:
    """effective_from of the rate-card versions in force during the period (the one at its start and any later)."""
    period = chargeback.period
    versions = chargeback.catalog.rates.sorted_versions()
    used = [v for v in versions if period.start < v.effective_from < period.end]
    at_start = chargeback.catalog.rates.version_at(period.start)
    return [iso_utc(v.effective_from) for v in ([at_start] if at_start else []) + used]


def query_set_hash(queries: Mapping[str, Mapping[str, str]]) -> str:
    """sha256 of cluster → query name → PromQL, as canonical JSON."""
    return sha256_text(canonical_json({c: dict(q) for c, q in queries.items()}))


def build_fingerprint(
    chargeback: Chargeback,
    *,
    catalog_root: Path,
    prometheus_url: str,
    server_version: str | None,
    queries: Mapping[str, Mapping[str, str]],
    issued_by: str,
    issued_at: dt.datetime,
) -> dict[str, Any]:
    """Everything that went into a close, as plain JSON values."""
    digest, count = catalog_hash(catalog_root)
    rates_file = catalog_root / "rates.yaml"
    return {
        "catalog": {
            "path": str(catalog_root),
            "sha256": digest,
            "files": count,
            "git": git_state(catalog_root),
        },
        "rate_card": {
            "sha256": hashlib.sha256(rates_file.read_bytes()).hexdigest() if rates_file.is_file() else None,
            "versions": rate_versions(chargeback),
        },
        "billing_mode": chargeback.billing_mode.value,
        "invoicing": {"payment_terms": chargeback.catalog.rates.invoicing.payment_terms},
        "prometheus": {
            "url": prometheus_url,
            "version": server_version,
            "queries_sha256": query_set_hash(queries),
            "queries": sum(len(q) for q in queries.values()),
        },
        "coverage": coverage_per_cluster(chargeback),
        "tool_version": tool_version(),
        "issued_by": issued_by,
        "issued_at": iso_utc(issued_at),
    }
