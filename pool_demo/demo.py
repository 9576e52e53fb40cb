"""`make demo`: the whole product on the example catalog, end to end, on this machine.

  python -m pool_demo [--out out/demo] [--period 2026-10] [--catalog catalog] [--keep-prometheus]

Steps: validate the catalog, run the offline policy check (mandatory violations stop the demo with
exit status 1), render the manifests, generate two months of usage and capability calls (the period
and the one before, so the reports show month over month), backfill them into a throw-away Prometheus
on 127.0.0.1, bill both months, check that the capability calls chargeback collects equal the generated
traffic, stop Prometheus (always, also on error) and print what each unit costs against its budget and
the calls per unit and capability (`--keep-prometheus`: Prometheus serves until Ctrl-C, and the demo prints
the `chargeback serve` line that exports its month). Every output is replaced atomically, and the same arguments give
byte-identical files. Errors print one clear message and exit with status 2.
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chargeback.collect.calls import collect_calls
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.errors import ChargebackError, LocalPrometheusError
from chargeback.ledger.close import close_month
from chargeback.period import Period
from chargeback.rate.north_star import change as north_star_change
from chargeback.run import PeriodRun, clusters_to_collect, run_period
from infra.errors import PoolError
from pool_catalog import Catalog, CatalogError, load_catalog
from pool_catalog.guard import guard
from pool_catalog.models import Resource
from pool_catalog.numbers import format_money, format_number, format_percent
from pool_catalog.pricing import hourly_price

from . import local_prometheus
from .demo_business import business_families
from .demo_calls import CallKey, call_families, collected_totals, differences, expected_calls
from .demo_usage import DEFAULT_SEED, demo_scenarios, split_by_month
from .synthetic import Pod, write_openmetrics

POLICY_FAILED = 1
"""Exit status when a mandatory policy is violated (the catalog would be refused by `pool check`)."""
# Every other error exits 2 and Ctrl-C 130, through the guard `pool` and `chargeback` use (pool_catalog.guard).

UTILIZATION_CAPTION = (
    "! = over budget. util. = CPU and memory used ÷ quota over the month, weighted by their prices "
    "(core-hours × CPU price + GiB-hours × memory price). idle held = the pool capacity idle allocations hold, "
    "at the rate card, each allocation once (its quota, else its requests), borne by the pool."
)
IDLE_PAID = "idle paid = what the unit's invoice bills for unused requests (request or max billing)."


NOBODY_PAYS_IDLE = "No idle paid column: 0.00 for every unit, as usage billing bills use, not what is held."


class DemoError(ChargebackError):
    """A demo step failed; the message says which and what to do."""


@dataclass
class StepTimes:
    """Seconds per step, printed at the end (and read by the tests)."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - began


@dataclass(frozen=True)
class NorthStarRow:
    """One row of the cost-per-unit-of-business table."""

    unit_id: str
    name: str
    unit: str
    volume: Decimal | None
    cost_per_unit: Decimal | None
    change: dict[str, Any]
    """north_star.change: previous cost per unit, changes of cost, volume and cost per unit, the flag."""


@dataclass(frozen=True)
class UnitSummary:
    """One row of the summary table: figures from the unit's invoice, plus utilization."""

    unit_id: str
    display_name: str
    cost: Decimal
    budget: Decimal | None
    budget_used: Decimal | None
    utilization: Decimal | None
    idle_unit_pays: Decimal
    idle_capacity_held: Decimal


@dataclass(frozen=True)
class DemoResult:
    period: Period
    out: Path
    runs: dict[str, PeriodRun]
    """Period label → its run (the previous month first)."""
    summary: list[UnitSummary]
    times: StepTimes
    manifests: list[Path]
    north_star: list[NorthStarRow] = field(default_factory=list)
    """Cost per unit of each unit's north-star metric, this month against the one before."""
    calls: dict[CallKey, tuple[int, int]] = field(default_factory=dict)
    """(month, consumer namespace, capability, call class) → (billable, 5xx) calls as chargeback collected
    them, checked equal to the generated traffic."""
    ledger: Path | None = None
    """The ledger both months were closed into (`--close`), which the portal reads."""


def require_prometheus() -> None:
    """Fail before any work when Debian's prometheus package is missing."""
    for name in ("promtool", "prometheus"):
        try:
            local_prometheus.find_binary(name)
        except LocalPrometheusError as e:
            raise DemoError(f"{e} (or install it yourself: sudo apt-get install prometheus)") from e


# ---------------------------------------------------------------- steps


def validate_catalog(catalog_dir: Path, console: Console) -> Catalog:
    try:
        catalog = load_catalog(catalog_dir)
    except CatalogError as e:
        raise DemoError(
            f"the catalog {catalog_dir} is not valid; fix these and run again (`pool validate` shows the same):\n"
            + "\n".join(f"  {finding}" for finding in e.findings)
        ) from e
    for warning in catalog.warnings:
        console.print(f"  [yellow]warning[/yellow] {escape(str(warning))}", soft_wrap=True)
    namespaces = len(catalog.namespaces())
    console.print(f"  catalog {catalog_dir}: {len(catalog.units)} business units, {namespaces} namespaces")
    return catalog


def policy_check(catalog: Catalog, console: Console) -> bool:
    """The offline policy check (`pool check`); True when no mandatory policy is violated."""
    from infra.check import check_catalog

    violations = check_catalog(catalog)
    mandatory = [v for v in violations if v.enforcement == "mandatory"]
    for v in violations:
        style = "red" if v.enforcement == "mandatory" else "yellow"
        where = f"{v.unit}: " if v.unit else ""
        line = f"{v.enforcement} {v.rule} {where}{v.resource}: {v.message}"
        console.print(f"  [{style}]{escape(line)}[/{style}]", soft_wrap=True)
    advisory = len(violations) - len(mandatory)
    console.print(f"  policy check: {len(mandatory)} mandatory and {advisory} advisory violations")
    return not mandatory


def render_manifests(catalog: Catalog, out: Path, console: Console) -> list[Path]:
    from infra.render import render_cluster, write_cluster

    written = []
    try:
        for cluster in catalog.pool.clusters:
            result = render_cluster(catalog, cluster.name)
            target = write_cluster(out, cluster.name, result.manifests)
            console.print(
                f"  cluster {cluster.name}: {len(result.manifests)} manifests validated, written to {target}",
                soft_wrap=True,
            )
            written.append(target)
    except CatalogError as e:
        raise DemoError("rendering the manifests failed:\n" + "\n".join(f"  {f}" for f in e.findings)) from e
    except PoolError as e:
        raise DemoError(f"rendering the manifests failed: {e}") from e
    return written


def write_month(catalog: Catalog, first: Period, last: Period, month: Period, path: Path, seed: int) -> tuple[int, ...]:
    """One month's OpenMetrics file (in a worker process): pods, series, samples, bytes."""
    scenarios = demo_scenarios(catalog, first.start, last.end, seed)
    business = business_families(catalog, first.start, month.start, month.end, seed)
    calls = call_families(catalog, first.start, month.start, month.end, seed)
    writer = write_openmetrics(
        path, split_by_month(scenarios, month.start, month.end), itertools.chain(business, calls)
    )
    pods = sum(1 for s in scenarios for p in s.pods if _lives_in(p, month))
    return pods, writer.series_written, writer.samples_written, path.stat().st_size


def _lives_in(pod: Pod, month: Period) -> bool:
    return (pod.start is None or pod.start < month.end) and (pod.end is None or pod.end > month.start)


def generate_usage(
    catalog: Catalog, periods: list[Period], work: Path, seed: int, progress: Progress
) -> list[tuple[int, ...]]:
    """Both months' OpenMetrics files, written side by side in two processes (the slow part is text)."""
    # Forked before the progress display starts its refresh thread.
    try:
        with ProcessPoolExecutor(len(periods), mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [
                pool.submit(write_month, catalog, periods[0], periods[-1], month, work / f"{month.label}.om", seed)
                for month in periods
            ]
            with progress:
                task = progress.add_task("writing OpenMetrics, one month per process", total=len(futures))
                results = []
                for future in futures:
                    results.append(future.result())
                    progress.advance(task)
    except (OSError, BrokenProcessPool) as e:
        raise DemoError(f"cannot write the generated usage to {work}: {e}; check free space in {work.parent}") from e
    return results


def backfill_months(periods: list[Period], work: Path, progress: Progress) -> None:
    """promtool per month in parallel, then every block into one TSDB (the months do not overlap)."""
    with progress, ThreadPoolExecutor(len(periods)) as pool:
        task = progress.add_task("promtool tsdb create-blocks-from openmetrics", total=len(periods))
        futures = [
            pool.submit(local_prometheus.backfill, work / f"{month.label}.om", work / f"blocks-{month.label}")
            for month in periods
        ]
        for future in futures:
            future.result()
            progress.advance(task)
    tsdb = work / "tsdb"
    try:
        tsdb.mkdir()
        for month in periods:
            (work / f"{month.label}.om").unlink()
            for block in sorted((work / f"blocks-{month.label}").iterdir()):
                block.rename(tsdb / block.name)
    except OSError as e:
        raise DemoError(f"cannot gather the TSDB blocks in {tsdb}: {e}") from e


def check_capability_calls(
    catalog: Catalog, periods: list[Period], url: str, seed: int
) -> dict[CallKey, tuple[int, int]]:
    """Collect each month's capability calls as chargeback does and compare them with the generated traffic:
    billable and 5xx calls per (month, consumer, capability, call class) must be equal, else DemoError."""
    collected: dict[CallKey, tuple[int, int]] = {}
    with PrometheusClient(PrometheusSettings(url=url)) as client:
        for period in periods:
            for cluster in clusters_to_collect(catalog, None, None):
                frame = collect_calls(client, catalog, period, cluster)
                for key, (paid, failed) in collected_totals(frame, catalog, period.label, period.start).items():
                    before = collected.get(key, (0, 0))
                    collected[key] = (before[0] + paid, before[1] + failed)
    _compare_calls(catalog, periods, seed, collected, "chargeback collected")
    return collected


def check_invoiced_calls(catalog: Catalog, runs: dict[str, PeriodRun], seed: int) -> dict[CallKey, tuple[int, int]]:
    """The calls on the months' invoices (their capability lines, every rate version and cluster summed)
    compared with the generated traffic, as `check_capability_calls` compares what was collected."""
    invoiced: dict[CallKey, tuple[int, int]] = {}
    for label, run in runs.items():
        lines = run.chargeback.capability_lines
        grouped = lines.groupby(["consumer_namespace", "capability", "call_class"], sort=True)
        for (consumer, capability, call_class), group in grouped:
            paid, failed = invoiced.get((label, consumer, capability, call_class), (0, 0))
            invoiced[(label, consumer, capability, call_class)] = (
                paid + int(group["calls"].sum()),
                failed + int(group["not_billable_calls"].sum()),
            )
    periods = [run.chargeback.period for run in runs.values()]
    _compare_calls(catalog, periods, seed, invoiced, "the invoices bill")
    return invoiced


def _compare_calls(
    catalog: Catalog, periods: list[Period], seed: int, found: dict[CallKey, tuple[int, int]], what: str
) -> None:
    expected = expected_calls(catalog, periods[0].start, [(p.label, p.start, p.end) for p in periods], seed)
    wrong = differences(expected, found)
    if wrong:
        raise DemoError(
            f"the capability calls {what} differ from the generated traffic:\n"
            + "\n".join(f"  {line}" for line in wrong)
            + "\n  the counting (chargeback/collect/calls.py), the rating (chargeback/rate/capabilities.py) or "
            "the demo's traffic model (pool_demo/demo_calls.py) is wrong; the reports of these months are not "
            "to be trusted"
        )


def utilization(run: PeriodRun, unit_id: str) -> Decimal | None:
    """Price-weighted CPU and memory use ÷ quota of a unit's own namespaces (see UTILIZATION_CAPTION)."""
    chargeback = run.chargeback
    usage = chargeback.usage
    own = usage[(usage["business_unit"] == unit_id) & usage["resource"].isin(["cpu", "memory"])]
    version = chargeback.catalog.rates.version_at(chargeback.period.start)
    used = allocated = Decimal(0)
    for resource in (Resource.CPU, Resource.MEMORY):
        rows = own[own["resource"] == resource.value]
        price = hourly_price(version, resource, None)
        used += Decimal(repr(float(rows["used"].fillna(0).sum()))) * price
        allocated += Decimal(repr(float(rows["allocated"].fillna(0).sum()))) * price
    if not allocated:
        return None
    return (used / allocated).quantize(Decimal("0.0001"))


def summarize(run: PeriodRun) -> list[UnitSummary]:
    """The summary rows, from the same invoices the reports are written from."""
    rows = []
    for invoice in run.chargeback.invoices:
        unit = invoice.business_unit
        budget = invoice.budget
        rows.append(
            UnitSummary(
                unit_id=unit.id,
                display_name=unit.display_name,
                cost=invoice.total,
                budget=budget.monthly if budget else None,
                budget_used=budget.used if budget else None,
                utilization=utilization(run, unit.id),
                idle_unit_pays=invoice.idle.unit_pays,
                idle_capacity_held=invoice.idle.capacity_held,
            )
        )
    return rows


def north_star_rows(current: PeriodRun, previous: PeriodRun | None) -> list[NorthStarRow]:
    """Per unit with a measured north star: cost per unit this month, and the change since the month before."""
    before = {}
    if previous is not None:
        for invoice in previous.chargeback.invoices:
            star = invoice.north_star
            before[invoice.business_unit.id] = (invoice.total, star.volume if star else None)
    rows = []
    for invoice in current.chargeback.invoices:
        star, unit_id = invoice.north_star, invoice.business_unit.id
        if star is None:
            continue
        change = north_star_change(*before[unit_id], invoice.total, star.volume) if unit_id in before else {}
        rows.append(NorthStarRow(unit_id, star.name, star.unit, star.volume, star.cost_per_unit, change))
    return rows


def capability_table(calls: dict[CallKey, tuple[int, int]], run: PeriodRun) -> Table:
    """Billable calls of the period per calling unit × capability; `!` marks calls the catalog does not declare."""
    chargeback = run.chargeback
    catalog, period = chargeback.catalog, chargeback.period
    undeclared = {
        (f.cluster, namespace, f.capability)
        for f in run.findings
        if f.code == "undeclared-caller"
        for namespace in f.namespaces
    }
    flagged = {(_unit_of(catalog, ns), capability) for _cluster, ns, capability in undeclared}
    capabilities = sorted({key[2] for key in calls if key[0] == period.label})
    cells: dict[tuple[str, str], int] = {}
    failed = 0
    for (month, consumer, capability, _kind), (paid, not_billed) in calls.items():
        if month == period.label:
            cell = (_unit_of(catalog, consumer), capability)
            cells[cell] = cells.get(cell, 0) + paid
            failed += not_billed
    named = ", ".join(f"{ns} → {capability}" for _cluster, ns, capability in sorted(undeclared)) or "none"
    table = _table(
        f"Capability calls {period.label} (billable)",
        f"Equal to the generated traffic. {format_number(failed)} calls answered 5xx, not billed. ! = calls without "
        f"`consumes` of the capability (chargeback doctor: undeclared-caller): {named}.",
    )
    table.add_column("unit", no_wrap=True)
    for capability in capabilities:
        table.add_column(capability, justify="right", no_wrap=True, min_width=len(capability))
    for unit in sorted({unit for unit, _capability in cells}):
        row = []
        for capability in capabilities:
            count = cells.get((unit, capability))
            text = "–" if count is None else format_number(count)
            row.append(f"[bold red]{text}![/bold red]" if (unit, capability) in flagged else text)
        table.add_row(escape(unit), *row)
    return table


def _table(title: str, caption: str) -> Table:
    """A table of the summary step: simple head rule, no edges, caption under it."""
    return Table(
        title=title,
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
        show_edge=False,
    )


def _unit_of(catalog: Catalog, namespace: str) -> str:
    owner = catalog.owner_of(namespace)
    return owner.id if owner is not None else namespace


def _share(value: str | None) -> str:
    return "–" if value is None else format_percent(value, sign=True)


def north_star_table(rows: list[NorthStarRow], period: Period, currency: str) -> Table:
    table = _table(
        f"Cost per unit of business {period.label} ({currency})",
        f"! = cost grew faster than the business metric since {period.previous.label}.",
    )
    table.add_column("unit", no_wrap=True)
    table.add_column("per", no_wrap=True)
    for name in ("volume", "cost/unit", "change", "cost Δ", "volume Δ"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    for row in rows:
        faster = bool(row.change.get("cost_grew_faster"))
        per_unit_change = _share(row.change.get("cost_per_unit_change_share"))
        table.add_row(
            escape(row.unit_id),
            escape(row.unit),
            "–" if row.volume is None else format_number(row.volume, 0),
            "–" if row.cost_per_unit is None else format_number(row.cost_per_unit, 4),
            f"[bold red]{per_unit_change}![/bold red]" if faster else per_unit_change,
            _share(row.change.get("cost_change_share")),
            _share(row.change.get("volume_change_share")),
        )
    return table


def summary_table(rows: list[UnitSummary], period: Period, currency: str) -> Table:
    """Cost, budget and idle money per unit. The "idle paid" column is shown only where some unit pays for idle
    allocations (request or max billing); under usage billing the caption says that nobody does."""
    paid = any(row.idle_unit_pays for row in rows)
    caption = UTILIZATION_CAPTION + " " + (IDLE_PAID if paid else NOBODY_PAYS_IDLE)
    table = _table(f"Chargeback {period.label} ({currency})", caption)
    table.add_column("unit", no_wrap=True)
    for name in ("cost", "budget", "of budget", "util.", *(("idle paid",) if paid else ()), "idle held"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))

    def idle(pays: Decimal, held: Decimal) -> tuple[str, ...]:
        return (*((format_money(pays, currency),) if paid else ()), format_money(held, currency))

    for row in rows:
        over = row.budget_used is not None and row.budget_used > 1
        used = "–" if row.budget_used is None else format_percent(row.budget_used)
        table.add_row(
            escape(row.unit_id),
            format_money(row.cost, currency),
            "–" if row.budget is None else format_money(row.budget, currency),
            f"[bold red]{used}![/bold red]" if over else used,
            "–" if row.utilization is None else format_percent(row.utilization),
            *idle(row.idle_unit_pays, row.idle_capacity_held),
        )
    total = sum((r.cost for r in rows), Decimal(0))
    budgets = sum((r.budget for r in rows if r.budget is not None), Decimal(0))
    table.add_section()
    table.add_row(
        "total",
        format_money(total, currency),
        format_money(budgets, currency),
        format_percent(total / budgets) if budgets else "–",
        "",
        *idle(
            sum((r.idle_unit_pays for r in rows), Decimal(0)),
            sum((r.idle_capacity_held for r in rows), Decimal(0)),
        ),
    )
    return table


# ---------------------------------------------------------------- the run


def run_demo(
    out: Path,
    period: Period,
    catalog_dir: Path,
    console: Console,
    *,
    keep_prometheus: Callable[[str], None] | None = None,
    seed: int = DEFAULT_SEED,
    ledger: Path | None = None,
) -> DemoResult | None:
    """Every step; returns None when a mandatory policy is violated. `keep_prometheus(url)` is called
    while Prometheus still serves (the command line waits there for Ctrl-C). With `ledger`, both months are
    also closed into that ledger (`chargeback close`, issued reports under <out>/issued/) for the portal."""
    require_prometheus()
    times = StepTimes()
    periods = [period.previous, period]

    def progress() -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    console.rule("1 validate the catalog")
    with times.measure("validate"):
        catalog = validate_catalog(catalog_dir, console)
    # Months of the catalog's billing zone: usage is generated for, and billed over, their UTC instants.
    period = period.in_zone(catalog.pool.billing.time_zone)
    periods = [period.previous, period]
    first = catalog.rates.sorted_versions()[0].effective_from
    if first > periods[0].start:
        raise DemoError(
            f"the demo bills {periods[0].label} and {period.label}, but rates.yaml has no prices before "
            f"{first:%Y-%m-%d %H:%M} UTC: choose a later --period or add a rate version that starts earlier"
        )
    console.rule("2 policy check")
    with times.measure("policy check"), progress() as bar:
        bar.add_task("checking the policy pack's rules against the program's resources", total=None)
        if not policy_check(catalog, console):
            console.print(
                "[red]mandatory policies are violated: fix the catalog (see `pool check`) and run again[/red]"
            )
            return None
    console.rule("3 render manifests")
    with times.measure("render"), progress() as bar:
        bar.add_task("running the Pulumi program under mocks", total=None)
        manifests = render_manifests(catalog, out / "manifests", console)

    work = _work_dir(out)
    try:
        console.rule(f"4 generate usage {periods[0].label} – {period.label}")
        with times.measure("generate"):
            written = generate_usage(catalog, periods, work, seed, progress())
        pods, series, samples, size = (sum(figures[i] for figures in written) for i in range(4))
        console.print(
            f"  {format_number(pods)} pods, {format_number(series)} series, {format_number(samples)} samples "
            f"({format_number(size / 2**20, 0)} MiB of OpenMetrics)"
        )
        console.rule("5 backfill with promtool")
        with times.measure("backfill"):
            backfill_months(periods, work, progress())

        console.rule("6 start Prometheus on 127.0.0.1")
        runs: dict[str, PeriodRun] = {}
        began = time.perf_counter()
        # The context manager stops Prometheus whatever happens below (step 8).
        with local_prometheus.LocalPrometheus(work / "tsdb") as prometheus:
            times.seconds["start prometheus"] = time.perf_counter() - began
            console.print(f"  serving the backfilled months at {prometheus.url}")
            console.rule("7 chargeback")
            with times.measure("chargeback"), progress() as bar:
                task = bar.add_task("billing", total=len(periods))
                for each in periods:
                    bar.update(task, description=f"billing {each.label}")
                    # The generated months are complete whatever today's date: bill them as ended.
                    ended = max(dt.datetime.now(dt.UTC), each.end)
                    runs[each.label] = run_period(each, catalog, prometheus.url, out / each.label, now=ended)
                    bar.advance(task)
            for label, run in runs.items():
                warnings = f", {len(run.warnings)} data warnings" if run.warnings else ""
                console.print(f"  {label}: {len(run.written)} files written to {out / label}{warnings}")
            with times.measure("check calls"):
                calls = check_invoiced_calls(catalog, runs, seed)
            billable = sum(paid for paid, _failed in calls.values())
            console.print(
                f"  capability calls: {format_number(billable)} billable calls on the invoices, equal to the generated "
                "traffic"
            )
            if ledger is not None:
                with times.measure("close"):
                    for each in periods:
                        ended = max(dt.datetime.now(dt.UTC), each.end)
                        closed = close_month(
                            each, catalog, prometheus.url, out / "issued" / each.label, ledger, now=ended,
                            issued_by="pool-demo", allow_dirty_catalog=True,
                        )  # fmt: skip
                        console.print(f"  {each.label}: {closed.outcome} in the ledger {closed.ledger}")
            if keep_prometheus is not None:
                keep_prometheus(prometheus.url)
            stopping = time.perf_counter()
        times.seconds["stop prometheus"] = time.perf_counter() - stopping
        console.rule("8 Prometheus stopped")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = summarize(runs[period.label])
    stars = north_star_rows(runs[period.label], runs.get(period.previous.label))
    return DemoResult(period, out, runs, summary, times, manifests, stars, calls, ledger)


def _work_dir(out: Path) -> Path:
    """A fresh directory for the OpenMetrics file and the TSDB, removed at the end."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".prometheus-", dir=out))
    except OSError as e:
        raise DemoError(f"cannot create a work directory in {out}: {e.strerror or e}; choose another --out") from e


def print_result(result: DemoResult, console: Console) -> None:
    console.rule("9 summary")
    currency = result.runs[result.period.label].chargeback.currency
    console.print(summary_table(result.summary, result.period, currency))
    if result.north_star:
        console.print(north_star_table(result.north_star, result.period, currency))
    if result.calls:
        console.print(capability_table(result.calls, result.runs[result.period.label]))
    month = result.out / result.period.label
    console.print("Reports:")
    for label in result.runs:
        console.print(f"  {label}: {result.out / label / 'finance-summary.html'}")
    console.print(f"  invoices (HTML and JSON): {month / 'invoices'}/")
    for name in ("usage.csv", "line_items.csv", "capability_lines.csv", "idle.csv", "focus.csv"):
        if (month / name).exists():  # capability_lines.csv: only when calls were counted
            console.print(f"  {name}: {month / name}")
    for path in result.manifests:
        console.print(f"  manifests: {path}/")
    if result.ledger is not None:
        console.print(f"  ledger of the closed months: {result.ledger} (the portal: see README, The portal)")
    console.print(
        "Step times: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.times.seconds.items())
    )


def serve_command(url: str, period: Period, catalog: Path) -> str:
    """The `chargeback serve` line that exports the demo's billed month, whole, from its kept Prometheus:
    `--at` the month's end is the demo's clock, so it works whatever today's date."""
    return (
        f".venv/bin/chargeback serve --prometheus {url} --catalog {catalog} --period {period.label} "
        f"--at {period.end:%Y-%m-%dT%H:%M:%SZ} --listen 127.0.0.1:9464 --interval 1h"
    )


def wait_for_interrupt(console: Console, period: Period, catalog: Path) -> Callable[[str], None]:
    """What `--keep-prometheus` does: serve until Ctrl-C (or SIGTERM), then let the demo stop Prometheus."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def wait(url: str) -> None:
        console.print(f"[bold]Prometheus keeps serving at {url}; press Ctrl-C to stop it and finish.[/bold]")
        console.print("  The live view of the billed month, in another terminal (from this directory):", soft_wrap=True)
        console.print(f"  {escape(serve_command(url, period, catalog))}", soft_wrap=True)
        previous = signal.signal(signal.SIGTERM, interrupt)
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("  stopping Prometheus")
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wait


# ---------------------------------------------------------------- command line

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for manifests and reports.")] = Path("out/demo"),
    period: Annotated[str, typer.Option("--period", help="Month to bill, YYYY-MM; the month before is billed too.")] = (
        "2026-10"
    ),
    catalog: Annotated[Path, typer.Option("--catalog", "-c", help="Catalog directory.")] = Path("catalog"),
    keep_prometheus: Annotated[
        bool, typer.Option("--keep-prometheus", help="Keep Prometheus serving the demo data until Ctrl-C.")
    ] = False,
    close: Annotated[
        bool,
        typer.Option("--close/--no-close", help="Also close both months into <out>/ledger.db (the portal reads it)."),
    ] = True,
) -> None:
    """Validate, check, render, generate two months of usage, bill them and print the summary."""
    console = Console(highlight=False)
    began = time.perf_counter()
    # Prometheus is stopped and the work directory removed on the way out; reports are written whole or not at all.
    with guard("demo", interrupted="interrupted: Prometheus stopped, reports already written are complete"):
        parsed = Period.parse(period)
        result = run_demo(
            out,
            parsed,
            catalog,
            console,
            keep_prometheus=wait_for_interrupt(console, parsed, catalog) if keep_prometheus else None,
            ledger=out / "ledger.db" if close else None,
        )
    if result is None:
        raise typer.Exit(POLICY_FAILED)
    print_result(result, console)
    console.print(f"Demo finished in {time.perf_counter() - began:.1f} s.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
