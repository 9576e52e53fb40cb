"""Write one period's reports: usage.csv, line_items.csv, idle.csv, focus.csv, invoices/<unit>.json|.html
and finance-summary.html.

Everything is rendered into a temporary directory next to the output directory and moved into
place only when every file was written, so a failure leaves earlier reports untouched. Rows are
sorted and numbers are fixed-point text: the same data gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

from infra.catalog.models import Resource
from infra.catalog.pricing import minor_unit

from .errors import OutputError
from .focus import COLUMNS as FOCUS_COLUMNS
from .focus import focus_rows
from .idle import LEVEL_UNITS, REASONS
from .invoices import build_invoices, finance_summary, text
from .rating import from_nano, nano
from .result import Chargeback
from .usage import PODS

USAGE_COLUMNS = (
    "period",
    "cluster",
    "namespace",
    "business_unit",
    "resource",
    "tier",
    "used",
    "requested",
    "allocated",
    "unit",
)
LINE_COLUMNS = (
    "period",
    "business_unit",
    "cost_center",
    "cluster",
    "namespace",
    "resource",
    "tier",
    "usage_quantity",
    "billed_quantity",
    "unit",
    "unit_price",
    "amount",
    "currency",
)
IDLE_COLUMNS = (
    "business_unit",
    "namespace",
    "resource",
    "tier",
    "allocated",
    "used_avg",
    "used_p95",
    "utilization",
    "idle_cost",
    "recommended_allocation",
    "monthly_savings",
    "reason",
    "pvc",
)
USAGE_UNITS = {**{r.value: r.usage_unit for r in Resource}, PODS: "pod-hour"}


# ------------------------------------------------------------------ rows


def usage_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    """Period totals per (cluster, namespace, resource, tier) of every namespace seen, owned or not.

    Summed as exact nano units; requested/allocated are empty where no hour had one."""
    frame = chargeback.usage
    if frame.empty:
        return []
    work = frame[["cluster", "namespace", "business_unit", "resource", "tier"]].astype(object).copy()
    for column in ("used", "requested", "allocated"):
        work[column] = nano(frame[column])
        work[f"has_{column}"] = frame[column].notna().to_numpy()
    sums = work.groupby(["cluster", "namespace", "business_unit", "resource", "tier"], sort=True).sum()
    rows = []
    for (cluster, namespace, unit_id, resource, tier), values in sums.iterrows():
        row = {
            "period": chargeback.period.label,
            "cluster": cluster,
            "namespace": namespace,
            "business_unit": unit_id,
            "resource": resource,
            "tier": tier,
        }
        for column in ("used", "requested", "allocated"):
            row[column] = text(from_nano(values[column])) if values[f"has_{column}"] else ""
        row["unit"] = USAGE_UNITS[resource]
        rows.append(row)
    return rows


def line_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    return [
        {column: text(v) if isinstance(v := line[column], Decimal) else v for column in LINE_COLUMNS}
        for line in chargeback.lines.to_dict("records")
    ]


def idle_rows(chargeback: Chargeback) -> list[dict[str, str]]:
    return [
        {column: text(v) if isinstance(v := row[column], Decimal) else v for column in IDLE_COLUMNS}
        for row in chargeback.idle.to_dict("records")
    ]


def csv_text(columns: Iterable[str], rows: Iterable[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# ------------------------------------------------------------------ HTML


def html_environment(currency: str) -> jinja2.Environment:
    """Jinja with autoescape on (label values are untrusted) and the number filters of the reports."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("chargeback", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    places = -minor_unit(currency).as_tuple().exponent
    env.filters["money"] = lambda value: f"{Decimal(value):,.{places}f}"
    env.filters["quantity"] = _quantity
    env.filters["percent"] = lambda value: "—" if value is None else f"{Decimal(value) * 100:,.1f} %"
    env.globals["reasons"] = REASONS
    env.globals["level_units"] = LEVEL_UNITS
    return env


def _quantity(value: str, places: int = 3) -> str:
    """Quantities rounded for reading (the JSON and CSV keep every digit)."""
    return f"{Decimal(value):,.{places}f}"


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)


# ------------------------------------------------------------------ writing


def report_files(chargeback: Chargeback) -> dict[str, str]:
    """Relative path → file content of every report of the period."""
    invoices = build_invoices(chargeback)
    env = html_environment(chargeback.currency)
    files = {
        "usage.csv": csv_text(USAGE_COLUMNS, usage_rows(chargeback)),
        "line_items.csv": csv_text(LINE_COLUMNS, line_rows(chargeback)),
        "idle.csv": csv_text(IDLE_COLUMNS, idle_rows(chargeback)),
        "focus.csv": csv_text(FOCUS_COLUMNS, focus_rows(chargeback)),
    }
    for invoice in invoices:
        unit_id = invoice["business_unit"]["id"]
        files[f"invoices/{unit_id}.json"] = json.dumps(invoice, indent=2, ensure_ascii=False) + "\n"
        files[f"invoices/{unit_id}.html"] = render(env, "invoice.html.j2", invoice=invoice)
    files["finance-summary.html"] = render(
        env, "finance-summary.html.j2", summary=finance_summary(chargeback, invoices)
    )
    return files


def write_reports(
    chargeback: Chargeback, out: Path, *, render_files: Callable[[Chargeback], dict[str, str]] = report_files
) -> list[Path]:
    """Render every report, then move them into `out` together; returns the written paths, sorted."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file: give a directory for the reports")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise OutputError(f"cannot create a directory next to {out}: {e.strerror}; check path and permissions") from e
    try:
        files = render_files(chargeback)
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", newline="")
        written = []
        for relative in sorted(files):
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, target)
            written.append(target)
        # Invoices of an earlier run for units that have none now would contradict the new summary.
        for stale in sorted((out / "invoices").glob("*")):
            if stale.suffix in (".json", ".html") and stale not in written:
                stale.unlink()
        return written
    except OSError as e:
        raise OutputError(f"cannot write the reports to {out}: {e}; check free space and permissions") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
