"""`pool request` on copies of the example catalog: accepted, refused (with what fits), written, and bad input.

Prices are those of rates.yaml in force on 2026-11-01 (cpu 0.24/core-hour, memory 0.032/GiB-hour,
hot 0.90/GiB-month, a month of 730 h), so every figure below is closed-form arithmetic.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.request import NamespaceRequest, evaluate
from pool_catalog import load_catalog
from pool_catalog.quantities import GIB
from tests.support.catalog_edit import copy_example, edit_yaml

runner = CliRunner()
AT = "2026-11-01T00:00:00Z"
UNIT_FILE = "business-units/{}.yaml"
SMALL = ("--cpu", "1", "--memory", "1Gi")
OVER_BUDGET = ("--allow-over-budget",)
REPORTS = ("--cpu", "8", "--memory", "32Gi", "--storage", "hot=500Gi")


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def run(catalog: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["request", "--catalog", str(catalog), "--at", AT, *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def ask(catalog: Path, unit: str, name: str, pool: str, *quota: str) -> tuple[int, str]:
    """`unit` asks for namespace `name` on node pool `pool` with the given quota flags."""
    return run(catalog, "--unit", unit, "--namespace", name, "--node-pool", pool, *quota)


def new_reports(catalog: Path, *extra: str) -> tuple[int, str]:
    """community-services asks for cs-reports: 8 cores, 32Gi, 500Gi hot on general."""
    return ask(catalog, "community-services", "cs-reports", "general", *REPORTS, *extra)


def test_new_namespace_is_accepted_with_its_monthly_cost_and_a_diff_but_nothing_written(catalog: Path) -> None:
    before = (catalog / UNIT_FILE.format("community-services")).read_text(encoding="utf-8")
    code, output = new_reports(catalog)
    assert code == 0, output
    assert "ACCEPTED" in output
    # 8 × 730 × 0.24 = 1,401.60; 32 × 730 × 0.032 = 747.52; 500 × 0.90 = 450.00
    assert "1,401.60" in output and "747.52" in output and "450.00" in output
    assert "2,599.12" in output
    # community-services today: cs-miniapp 10,119.92 + cs-miniapp-staging 2,329.12 = 12,449.04
    assert (
        "12,449.04 → 15,048.16 CNY (+2,599.12); budget 20,000.00 CNY (75.2 % of it; compared: the full-quota" in output
    )
    # without a history, what no quota bounds is said to be left out
    assert "not included: egress, capability calls and shared namespaces" in output
    assert "+  - name: cs-reports" in output and "+      storage: {hot: 500Gi}" in output
    assert "run again with --write" in output
    assert (catalog / UNIT_FILE.format("community-services")).read_text(encoding="utf-8") == before


def test_write_appends_the_namespace_keeping_comments_and_the_file_revalidates(catalog: Path) -> None:
    path = catalog / UNIT_FILE.format("community-services")
    before = path.read_text(encoding="utf-8")
    code, output = new_reports(catalog, "--write", "--purpose", "Monthly reports")
    assert code == 0, output
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before), "existing lines, comments and order stay as they were"
    assert after[len(before) :] == (
        "  - name: cs-reports\n"
        "    node_pool: general\n"
        "    purpose: Monthly reports\n"
        "    quota:\n"
        "      cpu: 8\n"
        "      memory: 32Gi\n"
        "      storage: {hot: 500Gi}\n"
    )
    assert "# Community Services: the residents' mini-program and its backend." in after
    reloaded = load_catalog(catalog)
    assert reloaded.owner_of("cs-reports").id == "community-services"
    namespace = next(ns for _, ns in reloaded.namespaces() if ns.name == "cs-reports")
    assert namespace.quota.cpu == 8 and namespace.quota.memory == 32 * GIB
    assert namespace.quota.storage == {"hot": 500 * GIB}
    assert not list(path.parent.glob(".*")), "no temporary file is left behind"


def test_quota_change_of_an_existing_namespace_edits_only_that_value(catalog: Path) -> None:
    path = catalog / UNIT_FILE.format("data-insight")
    before = path.read_text(encoding="utf-8")
    code, output = run(catalog, "--unit", "data-insight", "--namespace", "di-api", "--cpu", "30", "--write")
    assert code == 0, output
    assert "quota change of di-api" in output
    # di-api: 24 × 175.20 + 96 × 23.36 + 500 × 0.90 + 1 lb × 730 × 0.30 = 7,116.36; with 30 cores +1,051.20
    assert "namespace di-api now costs 7,116.36 CNY" in output
    assert "58,522.68 → 59,573.88 CNY (+1,051.20)" in output
    assert "-      cpu: 24" in output and "+      cpu: 30" in output
    assert path.read_text(encoding="utf-8") == before.replace("      cpu: 24\n", "      cpu: 30\n", 1)
    assert load_catalog(catalog).unit("data-insight").namespaces[0].quota.cpu == 30


def test_node_pool_refusal_names_the_limit_the_excess_and_what_fits(catalog: Path) -> None:
    path = catalog / UNIT_FILE.format("community-services")
    before = path.read_text(encoding="utf-8")
    code, output = ask(
        catalog, "community-services", "cs-big", "general", "--cpu", "500", "--memory", "32Gi", *OVER_BUDGET, "--write"
    )
    assert code == 1, output
    assert "REFUSED (1 limit)" in output
    # general: 4 × 64 = 256 cores × 2.0 = 512; other quotas 104 + 500 = 604
    assert (
        "node pool 'general': cpu quotas total 604 cores, above capacity 256 cores × overcommit 2.0 = 512 cores "
        "by 92 cores" in output
    )
    assert "node pool general has 408 cores free at overcommit 2.0: ask for ≤ 408 cores" in output
    assert path.read_text(encoding="utf-8") == before, "a refused request is never written"


def test_node_pool_refusal_points_at_other_pools_with_room(catalog: Path) -> None:
    code, output = ask(
        catalog, "community-services", "cs-lab", "edge-lab", "--cpu", "150", "--memory", "32Gi", *OVER_BUDGET
    )
    assert code == 1, output
    # edge-lab: 64 cores × 2.0 = 128, es-testbed holds 48 → 80 free; dedicated (tainted) pools are not offered
    assert "ask for ≤ 80 cores, or another pool: general has 408 cores, 1,632 GiB, 0 GPUs free; " in output
    assert "batch has 192 cores, 1 TiB, 2 GPUs free" in output


def test_storage_tier_refusal_names_the_excess_and_other_tiers(catalog: Path) -> None:
    code, output = ask(
        catalog, "community-services", "cs-data", "general", *SMALL, "--storage", "hot=40Ti", *OVER_BUDGET
    )
    assert code == 1, output
    # hot: 40Ti = 40,960Gi; quotas already hold 3,548Gi
    assert "storage tier 'hot': storage quotas total 44,508 GiB, above capacity 40 TiB by 3,548 GiB" in output
    assert "ask for ≤ 37,412 GiB on hot, or another tier: cold has 178 TiB free; archive has 493 TiB free" in output


def test_budget_overrun_is_refused_unless_allowed(catalog: Path) -> None:
    code, output = ask(catalog, "data-insight", "di-reports", "general", *REPORTS)
    assert code == 1, output
    # data-insight today 58,522.68 + 2,599.12 = 61,121.80 against 60,000
    assert (
        "unit 'data-insight' would cost 61,121.80 CNY per month at full quota, above its budget 60,000.00 CNY" in output
    )
    assert "by 1,121.80 CNY" in output
    assert "the budget leaves 1,477.32 CNY per month for di-reports (this quota costs 2,599.12)" in output
    code, output = ask(catalog, "data-insight", "di-reports", "general", *REPORTS, *OVER_BUDGET)
    assert code == 0, output
    assert "accepted with --allow-over-budget" in output and "ACCEPTED" in output


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("CS_Reports", "is not a DNS-1123 label"),
        ("x" * 64, "is not a DNS-1123 label"),
        ("kube-system", "is reserved for the platform"),
    ],
)
def test_bad_namespace_names_are_refused(catalog: Path, name: str, reason: str) -> None:
    code, output = ask(catalog, "community-services", name, "general", *SMALL)
    assert code == 1, output
    assert "namespace name" in output and reason in output


def test_ingress_namespace_is_refused_by_the_catalog_rules(catalog: Path) -> None:
    code, output = ask(catalog, "platform", "ingress-nginx", "general", *SMALL)
    assert code == 1, output
    assert "namespace 'ingress-nginx' is reserved for the platform" in output
    assert str(catalog / UNIT_FILE.format("platform")) in output, "findings point at the real file, not a copy"


def test_unknown_pool_and_tier_are_refused_with_the_known_ones(catalog: Path) -> None:
    code, output = ask(catalog, "community-services", "cs-x", "gpu", *SMALL, "--storage", "fast=10Gi")
    assert code == 1, output
    assert "cluster 'dc1' has no node pool 'gpu'" in output and "use one of: general, batch, edge-lab" in output
    assert "cluster 'dc1' has no storage tier 'fast'" in output and "use one of: hot, cold, archive" in output


def test_namespace_of_another_unit_is_refused(catalog: Path) -> None:
    code, output = run(catalog, "--unit", "community-services", "--namespace", "di-api", "--cpu", "1")
    assert code == 1, output
    assert "namespace 'di-api' in cluster 'dc1' belongs to unit 'data-insight'" in output


def test_load_balancers_beyond_the_units_addresses_are_refused(catalog: Path) -> None:
    code, output = run(catalog, "--unit", "community-services", "--namespace", "cs-miniapp", "--load-balancers", "20")
    assert code == 1, output
    # cs-miniapp-staging has none; 20 against the unit's 192.0.2.32/28 (16 addresses)
    assert "namespaces may create 20 load balancers but the unit owns 16 addresses" in output


def test_file_form_takes_a_namespace_entry_as_in_the_unit_file(catalog: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text(
        "# pasted from the unit file\n"
        "unit: community-services\n"
        "name: cs-search\n"
        "node_pool: general\n"
        "purpose: Search backend\n"
        "quota:\n"
        "  cpu: 500m\n"
        "  memory: 2Gi\n"
        "  storage: {cold: 100Gi}\n"
        "container_defaults: {default_cpu: 250m, default_memory: 256Mi}\n"
        "exposes:\n"
        "  - name: search\n"
        "    ports: [9200]\n"
        "    pod_selector: {app.kubernetes.io/name: search}\n"
        "consumes: [identity]\n",
        encoding="utf-8",
    )
    code, output = run(catalog, "--file", str(request), "--write")
    assert code == 0, output
    # 0.5 × 730 × 0.24 = 87.60; 2 × 730 × 0.032 = 46.72; 100 × 0.24 (cold from 2026-10-15) = 24.00
    assert "87.60" in output and "46.72" in output and "24.00" in output and "158.32" in output
    text = (catalog / UNIT_FILE.format("community-services")).read_text(encoding="utf-8")
    assert text.endswith(
        "      cpu: 500m\n"
        "      memory: 2Gi\n"
        "      storage: {cold: 100Gi}\n"
        "    container_defaults: {default_cpu: 250m, default_memory: 256Mi}\n"
        "    exposes:\n"
        "      - name: search\n"
        "        ports: [9200]\n"
        "        pod_selector: {app.kubernetes.io/name: search}\n"
        "    consumes: [identity]\n"
    )
    namespace = next(ns for _, ns in load_catalog(catalog).namespaces() if ns.name == "cs-search")
    assert namespace.consumes == ["identity"] and namespace.purpose == "Search backend"
    assert namespace.exposes[0].ports == [9200] and namespace.container_defaults.default_cpu == Decimal("0.25")


def test_an_unchanged_request_is_accepted_without_a_diff(catalog: Path) -> None:
    code, output = run(catalog, "--unit", "data-insight", "--namespace", "di-api", "--cpu", "24")
    assert code == 0, output
    assert "nothing changes" in output and "---" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--unit", "nobody", "--namespace", "x", "--cpu", "1"),
            "unknown unit 'nobody': use one of community-services",
        ),
        (
            ("--unit", "data-insight", "--namespace", "di-api", "--cpu", "3x"),
            "--cpu: '3x' is not a Kubernetes quantity",
        ),
        (("--unit", "data-insight", "--namespace", "di-api", "--storage", "hot"), "write TIER=SIZE"),
        (("--unit", "data-insight", "--namespace", "di-new", "--cpu", "1"), "give at least --node-pool, --cpu and"),
        (("--unit", "data-insight", "--namespace", "di-api", "--limits-cpu", "10"), "limits_cpu is below cpu"),
        (("--unit", "data-insight", "--namespace", "di-api", "--at", "soon"), "--at 'soon': write an ISO time"),
    ],
)
def test_bad_input_exits_2_with_a_message(catalog: Path, args: tuple[str, ...], message: str) -> None:
    path = catalog / UNIT_FILE.format("data-insight")
    before = path.read_text(encoding="utf-8")
    result = runner.invoke(app, ["request", "--catalog", str(catalog), "--at", AT, *args, "--write"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert path.read_text(encoding="utf-8") == before


def test_unparsable_request_file_exits_2(catalog: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text("name: [unclosed\n", encoding="utf-8")
    code, output = run(catalog, "--file", str(request))
    assert code == 2 and "is not valid YAML" in output
    request.write_text("unit: data-insight\nname: di-x\nnode_pol: general\n", encoding="utf-8")
    code, output = run(catalog, "--file", str(request))
    assert code == 2 and "node_pol: is not a field of a namespace request" in output


def test_new_mandatory_policy_violations_refuse_the_request(catalog: Path, tmp_path: Path) -> None:
    """With 25 % headroom the pack allows 384 of general's 512 cores; 104 + 300 breaks only the pack's rule."""
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"node-pool-capacity": {"headroom_percent": 25}}), encoding="utf-8")
    args = ("--unit", "community-services", "--namespace", "cs-big", "--node-pool", "general")
    args += ("--cpu", "300", "--memory", "8Gi", "--allow-over-budget")
    code, output = run(catalog, *args, "--policy-config", str(config))
    assert code == 1, output
    assert "REFUSED (1 limit)" in output and "policy node-pool-capacity" in output
    assert "= 384 cores by 20 cores" in output
    code, output = run(catalog, *args)
    assert code == 0, output


def test_evaluate_reports_figures_for_a_quota_change() -> None:
    """The library call behind the command: figures as Decimals, the entry as it would be written."""
    from tests.support.catalog_edit import EXAMPLE_CATALOG

    request = NamespaceRequest.model_validate(
        {"unit": "platform", "name": "pf-credit", "quota": {"storage": {"cold": 0}}}
    )
    decision = evaluate(load_catalog(EXAMPLE_CATALOG), request, at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    assert decision.accepted and not decision.is_new
    # pf-credit drops 2Ti of cold: 2,048 GiB × 0.24 = 491.52 per month
    assert decision.previous_cost - decision.cost.total == Decimal("491.52")
    assert decision.unit_before - decision.unit_after == Decimal("491.52")
    assert decision.entry.quota.storage == {"hot": 300 * GIB}
    assert "-      storage: {hot: 300Gi, cold: 2Ti}\n+      storage: {hot: 300Gi}\n" in decision.diff()


def ask_json(catalog: Path, unit: str, name: str) -> tuple[int, dict]:
    """`unit` asks for REPORTS on general with --json; stdout must be the decision alone."""
    args = ["request", "--catalog", str(catalog), "--at", AT, "--json", "--unit", unit, "--namespace", name]
    result = runner.invoke(app, [*args, "--node-pool", "general", *REPORTS])
    return result.exit_code, json.loads(result.stdout)


def test_json_decision_for_scripts(catalog: Path) -> None:
    code, decision = ask_json(catalog, "community-services", "cs-reports")
    assert code == 0
    assert decision["accepted"] is True and decision["new_namespace"] is True
    assert decision["monthly_cost"] == "2599.12" and decision["currency"] == "CNY"
    assert decision["monthly_cost_lines"][0] == {"resource": "cpu", "tier": "", "amount": "1401.60"}
    assert (decision["unit_monthly_before"], decision["unit_monthly_after"]) == ("12449.04", "15048.16")
    assert decision["rates_effective_from"] == "2026-10-15T00:00:00+00:00"
    assert "+  - name: cs-reports\n" in decision["diff"]
    code, refused = ask_json(catalog, "data-insight", "di-reports")
    assert code == 1
    assert refused["accepted"] is False and [r["limit"] for r in refused["refusals"]] == ["budget"]
    assert refused["diff"] == ""


def test_request_file_with_a_malformed_quota_exits_2(catalog: Path, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text("unit: data-insight\nname: di-api\nquota: 8\n", encoding="utf-8")
    code, output = run(catalog, "--file", str(request))
    assert code == 2 and "quota must be a mapping" in output


def two_clusters(catalog: Path) -> None:
    """Add cluster dc2 (one 32-core server, 10Ti hot); pin every existing namespace to dc1, as two clusters require."""

    def add_dc2(pool: dict) -> None:
        pool["clusters"].append(
            {
                "name": "dc2",
                "node_pools": [{"name": "general", "nodes": [{"name": "srv-dc2-01", "cpu": 32, "memory": "128Gi"}]}],
                "storage_tiers": [{"name": "hot", "provisioner": "rbd.csi.ceph.com", "capacity": "10Ti"}],
            }
        )

    def pin_to_dc1(unit: dict) -> None:
        for namespace in unit["namespaces"]:
            namespace.insert(1, "cluster", "dc1")

    edit_yaml(catalog / "pool.yaml", add_dc2)
    for path in sorted((catalog / "business-units").glob("*.yaml")):
        edit_yaml(path, pin_to_dc1)


def test_with_several_clusters_the_first_is_the_default_and_names_are_per_cluster(catalog: Path) -> None:
    two_clusters(catalog)
    code, output = ask(catalog, "community-services", "cs-reports", "general", *SMALL, "--write")
    assert code == 0, output
    assert "in cluster dc1" in output and "+    cluster: dc1\n" in output, (
        "the cluster is written when there are several"
    )
    code, output = run(catalog, "--cluster", "dc2", "--unit", "community-services", "--namespace", "di-api")
    assert code == 2 and "is new for unit 'community-services'" in output, "di-api belongs to data-insight in dc1 only"
    code, output = ask(catalog, "community-services", "di-api", "general", "--cluster", "dc2", *SMALL, "--write")
    assert code == 0, output
    # dc2 general: 32 cores × the default overcommit 1.0
    code, output = ask(
        catalog, "community-services", "cs-dc2", "general", "--cluster", "dc2", "--cpu", "40", "--memory", "1Gi"
    )
    assert code == 1 and "above capacity 32 cores × overcommit 1.0 = 32 cores by 9 cores" in output
    reloaded = load_catalog(catalog)
    assert reloaded.owner_of("di-api", "dc2").id == "community-services"
    assert reloaded.owner_of("di-api", "dc1").id == "data-insight"
