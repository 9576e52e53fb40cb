"""`pool`: the platform engineer's and business unit's command line.

Each command parses its flags, calls one library function and prints; errors from the
catalog (or any `PoolError`) are shown as findings and end with exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .catalog import Catalog, CatalogError, Finding, Severity, load_catalog
from .catalog.models import BusinessUnit, Pool, RateCard
from .errors import PoolError

if TYPE_CHECKING:
    from .render import RenderResult

app = typer.Typer(
    help="Pool servers, storage and network into namespaces per business unit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Catalog helpers.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

CatalogDir = Annotated[Path, typer.Option("--catalog", "-c", help="Catalog directory.", envvar="POOL_CATALOG")]


def print_findings(findings: list[Finding]) -> None:
    """Errors in red and warnings in yellow, one per line, on stderr."""
    for finding in findings:
        style = "red" if finding.severity is Severity.ERROR else "yellow"
        err.print(f"[{style}]{finding.severity.value}[/{style}] {finding}", soft_wrap=True, markup=True)


def fail(findings: list[Finding]) -> None:
    print_findings(findings)
    raise typer.Exit(2)


@app.command()
def validate(catalog: CatalogDir = Path("catalog")) -> None:
    """Check the catalog: schema, references, capacity, address ranges, prices and budgets."""
    try:
        loaded = load_catalog(catalog)
    except CatalogError as e:
        fail(e.findings)
    print_findings(loaded.warnings)
    namespaces = len(loaded.namespaces())
    out.print(
        f"catalog {catalog} is valid: {len(loaded.units)} business units, {namespaces} namespaces, "
        f"{len(loaded.warnings)} warnings"
    )
    for result in _render_all(loaded, None):
        out.print(
            f"cluster {result.cluster}: program built {len(result.resources)} resources under mocks, "
            f"{len(result.manifests)} manifests validated",
            soft_wrap=True,
        )


def _render_all(loaded: Catalog, cluster: str | None) -> list[RenderResult]:
    """Run the Pulumi program under mocks and validate its manifests; errors end the command (exit 2)."""
    from .render import render_cluster

    names = [cluster] if cluster else [c.name for c in loaded.pool.clusters]
    try:
        return [render_cluster(loaded, name) for name in names]
    except CatalogError as e:
        fail(e.findings)
    except PoolError as e:
        fail_error(e)
    raise AssertionError("unreachable")


def fail_error(error: PoolError) -> NoReturn:
    """Print a PoolError (every line of it) in red and exit 2."""
    err.print(f"[red]error[/red] {escape(str(error))}", soft_wrap=True, markup=True)
    raise typer.Exit(2)


@app.command()
def render(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory; manifests go to <out>/<cluster>/.")],
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (default: all).")] = None,
    catalog: CatalogDir = Path("catalog"),
) -> None:
    """Write the manifests the Pulumi program applies, one validated YAML file per object, for GitOps review."""
    from .render import write_cluster

    try:
        loaded = load_catalog(catalog)
    except CatalogError as e:
        fail(e.findings)
    print_findings(loaded.warnings)
    results = _render_all(loaded, cluster)
    try:
        for result in results:
            target = write_cluster(out_dir, result.cluster, result.manifests)
            out.print(
                f"cluster {result.cluster}: {len(result.manifests)} manifests validated and written to {target}",
                soft_wrap=True,
            )
    except PoolError as e:
        fail_error(e)


@app.command()
def check(
    catalog: CatalogDir = Path("catalog"),
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (default: all).")] = None,
    policy_config: Annotated[
        Path | None,
        typer.Option("--policy-config", help="JSON policy config, as for `pulumi preview --policy-pack-config`."),
    ] = None,
) -> None:
    """Run the policy pack offline over what the program declares; exit 1 on mandatory violations."""
    from rich.tree import Tree

    from .check import check_catalog

    try:
        loaded = load_catalog(catalog)
    except CatalogError as e:
        fail(e.findings)
    print_findings(loaded.warnings)
    try:
        config = json.loads(policy_config.read_text(encoding="utf-8")) if policy_config else {}
        if not isinstance(config, dict):
            raise ValueError("expected a JSON object of rule name → level or settings")
    except (OSError, ValueError) as e:
        fail_error(PoolError(f"--policy-config {policy_config}: {e}"))
    try:
        violations = check_catalog(loaded, cluster, config)
    except CatalogError as e:
        fail(e.findings)
    except PoolError as e:
        fail_error(e)
    mandatory = sum(v.enforcement == "mandatory" for v in violations)
    tree = Tree(f"policy check of {catalog}" + (f", cluster {cluster}" if cluster else ""))
    units: dict[str, Tree] = {}
    rules: dict[tuple[str, str], Tree] = {}
    for v in violations:
        unit = v.unit or "cluster-wide"
        if unit not in units:
            units[unit] = tree.add(f"[bold]{escape(unit)}[/bold]")
        if (unit, v.rule) not in rules:
            rules[(unit, v.rule)] = units[unit].add(escape(v.rule))
        style = "red" if v.enforcement == "mandatory" else "yellow"
        rules[(unit, v.rule)].add(f"[{style}]{v.enforcement}[/{style}] {escape(v.resource)}: {escape(v.message)}")
    if violations:
        out.print(tree, soft_wrap=True)
    advisory = len(violations) - mandatory
    verdict = "failed" if mandatory else "passed"
    out.print(f"policy check {verdict}: {mandatory} mandatory and {advisory} advisory violations", soft_wrap=True)
    if mandatory:
        raise typer.Exit(1)


@catalog_app.command("schema")
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


def main() -> None:
    app()
