"""`pool`: the platform engineer's and business unit's command line.

Each command parses its flags, calls one library function and prints; errors from the catalog (each
finding on its line) or any `PoolError` go through `pool_catalog.guard`: a message and exit status 2,
never a traceback.
"""

from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from pool_catalog import Catalog, load_catalog
from pool_catalog.guard import guard, print_findings
from pool_catalog.models import BusinessUnit, Pool, RateCard

from .errors import PoolError

if TYPE_CHECKING:
    from .render import RenderResult
    from .request.decide import Decision

app = typer.Typer(
    help="Pool servers, storage and network into namespaces per business unit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Catalog helpers.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
alerts_app = typer.Typer(help="Alert routing and rules generated from the catalog.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

WIDE = 1000
"""Width of output off a terminal (a pipe, CI logs, cron mail): tables as wide as their content, nothing cut."""

# Everything printed is text, never Rich markup: names, paths and messages may contain brackets.
out = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else WIDE)
err = Console(stderr=True, highlight=False, markup=False, emoji=False)


def styled(label: str, style: str, message: str = "") -> Text:
    """`label` in `style`, then `message` as plain text."""
    return Text.assemble((label, style), " " if message else "", message)


CatalogDir = Annotated[Path, typer.Option("--catalog", "-c", help="Catalog directory.", envvar="POOL_CATALOG")]


def load_with_warnings(catalog: Path) -> Catalog:
    """The catalog at `catalog` with its warnings printed; its errors (a CatalogError) end the command."""
    loaded = load_catalog(catalog)
    print_findings(loaded.warnings)
    return loaded


@app.command()
@guard("pool")
def validate(catalog: CatalogDir = Path("catalog")) -> None:
    """Check the catalog: schema, references, capacity, address ranges, prices and budgets."""
    loaded = load_with_warnings(catalog)
    namespaces = len(loaded.namespaces())
    results = _render_all(loaded, None)  # before saying "valid": the program under mocks may still fail
    out.print(
        f"catalog {catalog} is valid: {len(loaded.units)} business units, {namespaces} namespaces, "
        f"{len(loaded.warnings)} warnings",
        soft_wrap=True,
    )
    for result in results:
        out.print(
            f"cluster {result.cluster}: program built {len(result.resources)} resources under mocks, "
            f"{len(result.manifests)} manifests validated",
            soft_wrap=True,
        )


def _render_all(loaded: Catalog, cluster: str | None) -> list[RenderResult]:
    """Run the Pulumi program under mocks and validate its manifests (for every cluster, or `cluster`)."""
    from .render import render_cluster

    names = [cluster] if cluster else [c.name for c in loaded.pool.clusters]
    return [render_cluster(loaded, name) for name in names]


@app.command()
@guard("pool")
def render(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory; manifests go to <out>/<cluster>/.")],
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (default: all).")] = None,
    catalog: CatalogDir = Path("catalog"),
) -> None:
    """Write the manifests the Pulumi program applies, one validated YAML file per object, for GitOps review."""
    from .render import write_cluster

    loaded = load_with_warnings(catalog)
    results = _render_all(loaded, cluster)
    for result in results:
        target = write_cluster(out_dir, result.cluster, result.manifests)
        out.print(
            f"cluster {result.cluster}: {len(result.manifests)} manifests validated and written to {target}",
            soft_wrap=True,
        )


PolicyConfigFile = Annotated[
    Path | None,
    typer.Option("--policy-config", help="JSON policy config, as for `pulumi preview --policy-pack-config`."),
]


def read_policy_config(path: Path | None) -> dict:
    """The --policy-config JSON object (rule name → level or settings); unreadable or not an object ends with exit 2."""
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path else {}
        if not isinstance(config, dict):
            raise ValueError("expected a JSON object of rule name → level or settings")
    except (OSError, ValueError) as e:
        raise PoolError(f"--policy-config {path}: {e}") from None
    return config


@app.command()
@guard("pool")
def check(
    catalog: CatalogDir = Path("catalog"),
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (default: all).")] = None,
    policy_config: PolicyConfigFile = None,
) -> None:
    """Run the policy pack offline over what the program declares; exit 1 on mandatory violations."""
    from .check import check_catalog

    loaded = load_with_warnings(catalog)
    config = read_policy_config(policy_config)
    violations = check_catalog(loaded, cluster, config)
    mandatory = sum(v.enforcement == "mandatory" for v in violations)
    # Plain lines, each message whole on one line (the terminal may wrap it, nothing cuts it): a tree or a
    # table would crop or fold messages to a narrow terminal or to 80 columns when piped.
    if violations:
        out.print(f"policy check of {catalog}" + (f", cluster {cluster}" if cluster else ""), soft_wrap=True)
    shown: set[tuple[str, ...]] = set()
    for v in violations:
        unit = v.unit or "cluster-wide"
        for heading in ((unit,), (unit, v.rule)):
            if heading not in shown:
                shown.add(heading)
                style = "bold" if len(heading) == 1 else ""
                out.print(Text("  " * len(heading)) + Text(heading[-1], style=style), soft_wrap=True)
        style = "red" if v.enforcement == "mandatory" else "yellow"
        out.print(Text("      ") + styled(v.enforcement, style, f"{v.resource}: {v.message}"), soft_wrap=True)
    advisory = len(violations) - mandatory
    verdict = "failed" if mandatory else "passed"
    out.print(f"policy check {verdict}: {mandatory} mandatory and {advisory} advisory violations", soft_wrap=True)
    if mandatory:
        raise typer.Exit(1)


@app.command()
@guard("pool")
def request(
    unit: Annotated[str | None, typer.Option("--unit", help="Business unit id (or `unit:` in --file).")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace: new, or one of the unit's.")] = None,
    node_pool: Annotated[str | None, typer.Option("--node-pool", help="Node pool (required when new).")] = None,
    cpu: Annotated[str | None, typer.Option("--cpu", help="CPU quota in cores: 8, 500m.")] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory quota: 32Gi.")] = None,
    storage: Annotated[
        list[str] | None, typer.Option("--storage", help="TIER=SIZE, repeatable: --storage hot=500Gi; 0 removes.")
    ] = None,
    limits_cpu: Annotated[str | None, typer.Option("--limits-cpu", help="limits.cpu (default 2 × cpu).")] = None,
    limits_memory: Annotated[
        str | None, typer.Option("--limits-memory", help="limits.memory (default memory).")
    ] = None,
    gpu: Annotated[int | None, typer.Option("--gpu", help="GPUs.")] = None,
    load_balancers: Annotated[int | None, typer.Option("--load-balancers", help="LoadBalancer services.")] = None,
    pods: Annotated[int | None, typer.Option("--pods", help="Maximum pods (default 100).")] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Default: the namespace's, else the first.")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose", help="What runs there.")] = None,
    consumes: Annotated[list[str] | None, typer.Option("--consumes", help="Capability it calls, repeatable.")] = None,
    request_file: Annotated[
        Path | None,
        typer.Option("--file", help="YAML namespace entry as in the unit's file (+ `unit:`); flags override."),
    ] = None,
    write: Annotated[bool, typer.Option("--write", help="Edit the unit's catalog file when accepted.")] = False,
    allow_over_budget: Annotated[
        bool, typer.Option("--allow-over-budget", help="Accept (with a warning) a request above the unit's budget.")
    ] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="Price at the rate card in force at this UTC time (default: now).")
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            help="An issued month: a `chargeback invoice` (or `ledger export --format files`) folder or the unit's "
            "invoice JSON; the budget is then compared with what the unit is expected to pay from that month's use.",
            envvar="POOL_HISTORY",
        ),
    ] = None,
    budget_basis: Annotated[
        str | None,
        typer.Option(
            "--budget-basis",
            help="Compare the budget with the `expected` figure (default with --history) or at full `quota`.",
        ),
    ] = None,
    policy_config: PolicyConfigFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON (diff included).")] = False,
    catalog: CatalogDir = Path("catalog"),
) -> None:
    """Ask for a namespace or a quota change: checks names, capacity, budget and policies; exit 1 when refused."""
    from .request.decide import evaluate, parse_budget_basis
    from .request.history import read_history
    from .request.model import request_from_command_line

    loaded = load_with_warnings(catalog)
    config = read_policy_config(policy_config)
    flags = {"unit": unit, "name": namespace, "cluster": cluster, "node_pool": node_pool, "purpose": purpose}
    flags["consumes"] = consumes or None
    quota_flags = {
        "cpu": cpu,
        "memory": memory,
        "limits_cpu": limits_cpu,
        "limits_memory": limits_memory,
        "gpu": gpu,
        "load_balancers": load_balancers,
        "pods": pods,
    }
    parsed = request_from_command_line(
        request_file, {**flags, "consumes": consumes or None}, quota_flags, storage or []
    )
    when = _utc_time(at, "--at") if at else None
    basis = parse_budget_basis(budget_basis)
    asking = loaded.unit(parsed.unit)
    measured = read_history(history, loaded, asking) if history is not None and asking is not None else None
    decision = evaluate(
        loaded,
        parsed,
        at=when,
        allow_over_budget=allow_over_budget,
        policy_config=config,
        history=measured,
        budget_basis=basis,
    )
    if as_json:
        json.dump(decision.to_json(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        _print_decision(decision)
    if decision.accepted and decision.changed:
        if not as_json:
            out.print(decision.diff(), soft_wrap=True, end="")
        if write:
            decision.write()
            (err if as_json else out).print(f"wrote {decision.file}: commit it and open a pull request", soft_wrap=True)
        elif not as_json:
            out.print(f"run again with --write to edit {decision.file}", soft_wrap=True)
    if not decision.accepted:
        raise typer.Exit(1)


def _utc_time(text: str, flag: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise PoolError(f"{flag} {text!r}: write an ISO time such as 2026-11-01T00:00:00Z") from e
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _print_decision(decision: Decision) -> None:
    """What was asked, what it costs per month at full quota, and the verdict with reasons."""
    from rich.table import Table

    from pool_catalog.numbers import format_money

    what = "new namespace" if decision.is_new else "quota change of"
    out.print(f"{what} {decision.namespace} for unit {decision.unit} in cluster {decision.cluster}", soft_wrap=True)
    if decision.cost is not None:
        currency = decision.currency
        # The heading on its own line: a table title would wrap to the width of its narrow table.
        out.print(f"monthly cost at full quota (730 h, rates from {decision.rates_from:%Y-%m-%d})", soft_wrap=True)
        table = Table()
        table.add_column("resource")
        table.add_column("tier")
        table.add_column(currency, justify="right")
        for (resource, tier), amount in decision.cost.lines.items():
            table.add_row(resource.value, tier, format_money(amount, currency))
        table.add_row("total", "", format_money(decision.cost.total, currency))
        out.print(table)
        if decision.previous_cost is not None:
            out.print(
                f"namespace {decision.namespace} now costs {format_money(decision.previous_cost, currency)} "
                f"{currency} per month at full quota",
                soft_wrap=True,
            )
        for line in decision.budget_lines():
            out.print(line, soft_wrap=True)
    for warning in decision.warnings:
        err.print(styled("warning", "yellow", warning), soft_wrap=True)
    if decision.accepted:
        note = "" if decision.changed else " (nothing changes: the catalog already says so)"
        out.print(Text.assemble(("ACCEPTED", "green"), note), soft_wrap=True)
        return
    count = len(decision.refusals)
    out.print(styled("REFUSED", "red", f"({count} {'limit' if count == 1 else 'limits'})"), soft_wrap=True)
    for refusal in decision.refusals:
        out.print(Text.assemble("  ", (refusal.limit, "red"), f": {refusal.message}"), soft_wrap=True)
        if refusal.fits:
            out.print(f"    what fits: {refusal.fits}", soft_wrap=True)


@app.command()
@guard("pool")
def capacity(
    catalog: CatalogDir = Path("catalog"),
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Capacity, allocated quotas, free room and overcommit per node pool, storage tier and address range."""
    from rich.box import SIMPLE
    from rich.table import Table

    from pool_catalog.capacity import capacity_json, capacity_report
    from pool_catalog.checks import check_catalog as catalog_findings
    from pool_catalog.numbers import format_percent
    from pool_catalog.quantities import format_amount as amount

    # Loaded without the cross-file checks: an over-allocated pool is when the table matters most.
    loaded = load_catalog(catalog, check=False)
    print_findings(catalog_findings(loaded))
    try:
        report = capacity_report(loaded, cluster)
    except KeyError:
        known = ", ".join(c.name for c in loaded.pool.clusters)
        raise PoolError(f"--cluster {cluster!r} is not in pool.yaml: use one of {known}") from None
    if as_json:
        json.dump(capacity_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return

    def percent(share: Decimal | None) -> str:
        return "–" if share is None else format_percent(share)

    for item in report:
        pools = Table(title=f"cluster {item.cluster}: node pools (limit = capacity × over)", box=SIMPLE)
        for column in ("pool", "resource", "capacity", "over", "limit", "allocated", "free", "%"):
            if column in ("pool", "resource"):
                pools.add_column(column, overflow="fold")
            else:  # amounts keep their width on a narrow terminal: the names fold instead
                pools.add_column(column, justify="right", no_wrap=True, min_width=len(column))
        for pool_name, rooms in item.node_pools.items():
            for resource, room in rooms.items():
                pools.add_row(
                    pool_name,
                    resource,
                    amount(resource, room.capacity),
                    f"×{room.overcommit}",
                    amount(resource, room.limit),
                    amount(resource, room.allocated),
                    amount(resource, room.free),
                    percent(room.share_allocated),
                )
        out.print(pools)
        tiers = Table(title=f"cluster {item.cluster}: storage tiers", box=SIMPLE)
        for column in ("tier", "capacity", "allocated", "free", "%"):
            if column == "tier":
                tiers.add_column(column, overflow="fold")
            else:
                tiers.add_column(column, justify="right", no_wrap=True)
        for tier_name, room in item.tiers.items():
            tiers.add_row(
                tier_name,
                amount("storage", room.capacity),
                amount("storage", room.allocated),
                amount("storage", room.free),
                percent(room.share_allocated),
            )
        out.print(tiers)
        addresses = item.addresses
        out.print(
            f"cluster {item.cluster}: load-balancer addresses {addresses.addresses}, assigned to units "
            f"{addresses.assigned}, unassigned {addresses.unassigned}; quotas allow {addresses.quota} load balancers",
            soft_wrap=True,
        )


@catalog_app.command("schema")
@guard("pool")
def catalog_schema(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write one JSON Schema per file kind here.")] = None,
) -> None:
    """JSON Schemas of pool.yaml, business-units/*.yaml and rates.yaml, for editor completion."""
    schemas = {
        "pool.schema.json": Pool.model_json_schema(),
        "business-unit.schema.json": BusinessUnit.model_json_schema(),
        "rates.schema.json": RateCard.model_json_schema(),
    }
    if out_dir is None:
        json.dump(schemas, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (out_dir / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.print(f"wrote {out_dir / name}")


@alerts_app.command("render")
@guard("pool")
def alerts_render(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for alertmanager.yml and the rules file.")],
    catalog: CatalogDir = Path("catalog"),
) -> None:
    """Write alertmanager.yml (a route per unit to its contacts, the platform route, inhibition) and the
    Prometheus rules file, both from the catalog."""
    from .alerts import write_alerting

    loaded = load_with_warnings(catalog)
    written = write_alerting(loaded, out_dir)
    routed = [u.id for u in loaded.units if u.alerts is not None]
    out.print(f"wrote {', '.join(str(p) for p in written)}", soft_wrap=True)
    out.print(f"{len(routed)} unit routes ({', '.join(routed) or 'none'}); everything else goes to the platform route")


def main() -> None:
    app()
