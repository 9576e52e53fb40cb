"""Catalogs a hostile or careless author may write: groups that would open a unit to everyone, quantities
Kubernetes cannot hold, names it would refuse, unit files that would be left out, YAML alias bombs — each
refused with the file, the field, the line and how to fix it, never a traceback and never accepted."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli import app
from pool_catalog import CatalogError, load_catalog
from tests.pool_catalog.test_catalog import CS, DI, ES, PF, POOL, RATES, di_ns, first_version, gen_pool, set_path
from tests.support.catalog_edit import copy_example, edit_yaml

runner = CliRunner()


def append_to(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        node = doc
        for part in path:
            node = node[part]
        node.append(value)

    return change


# (id, file to edit, change, file the finding names, field it names, text the message contains)
HOSTILE: list[tuple[str, str, Callable[[Any], Any], str, str, str]] = [
    (
        "owner-system-authenticated",
        DI,
        set_path(("owners",), ["system:authenticated"]),
        DI,
        "owners[0]",
        "is a Kubernetes system group: binding it would let its members administer",
    ),
    (
        "viewer-system-unauthenticated",
        DI,
        set_path(("viewers",), ["finance-readers", "system:unauthenticated"]),
        DI,
        "viewers[1]",
        "let its members read",
    ),
    ("owner-empty", DI, set_path(("owners",), [""]), DI, "owners[0]", "a group name is empty"),
    ("owner-blank", CS, set_path(("owners",), ["  "]), CS, "owners[0]", "a group name is empty"),
    ("owner-padded", CS, set_path(("owners",), [" cs-admins"]), CS, "owners[0]", "leading/trailing spaces"),
    ("viewer-twice", PF, set_path(("viewers",), ["a", "a"]), PF, "viewers", "group 'a' is listed twice"),
    (
        "quota-cpu-1e30",
        DI,
        set_path(di_ns(0, "quota", "cpu"), "1e30"),
        DI,
        "namespaces[0].quota.cpu",
        "larger than Kubernetes can store",
    ),
    (
        "quota-cpu-sub-millicore",
        DI,
        set_path(di_ns(0, "quota", "cpu"), "0.5m"),
        DI,
        "namespaces[0].quota.cpu",
        "finer than a millicore",
    ),
    (
        "quota-memory-huge",
        DI,
        set_path(di_ns(0, "quota", "memory"), "1e400"),
        DI,
        "namespaces[0].quota.memory",
        "larger than Kubernetes can store",
    ),
    (
        "quota-memory-millibytes",
        DI,
        set_path(di_ns(0, "quota", "memory"), "100m"),
        DI,
        "namespaces[0].quota.memory",
        "not a whole number of bytes",
    ),
    (
        "budget-1e400",
        DI,
        set_path(("budget", "monthly"), "1e400"),
        DI,
        "budget.monthly",
        "larger than 1,000,000,000,000,000",
    ),
    ("budget-infinite", DI, set_path(("budget", "monthly"), float("inf")), DI, "budget.monthly", "not a finite amount"),
    (
        "price-huge",
        RATES,
        set_path((*first_version("cpu"), "price"), "1e30"),
        RATES,
        "versions[0].cpu.price",
        "larger than",
    ),
    (
        "node-cpu-1e400",
        POOL,
        set_path(gen_pool("nodes", 0, "cpu"), "1e400"),
        POOL,
        "clusters[0].node_pools[0].nodes[0].cpu",
        "larger than Kubernetes can store",
    ),
    (
        "taint-key-with-space",
        POOL,
        set_path(("clusters", 0, "node_pools", 2, "taints", 0, "key"), "bad key!"),
        POOL,
        "clusters[0].node_pools[2].taints[0].key",
        "is not a valid Kubernetes label key",
    ),
    (
        "taint-value-bad",
        POOL,
        set_path(("clusters", 0, "node_pools", 2, "taints", 0, "value"), "edge security"),
        POOL,
        "clusters[0].node_pools[2].taints[0].value",
        "is not a valid label or taint value",
    ),
    (
        "empty-provisioner",
        POOL,
        set_path(("clusters", 0, "storage_tiers", 0, "provisioner"), ""),
        POOL,
        "clusters[0].storage_tiers[0].provisioner",
        "should match pattern",
    ),
    (
        "kube-prefixed-namespace",
        DI,
        set_path(di_ns(0, "name"), "kube-di"),
        DI,
        "namespaces[0].name",
        "names starting kube- belong to Kubernetes",
    ),
    (
        "empty-pod-selector",
        PF,
        set_path(("namespaces", 0, "exposes", 0, "pod_selector"), {}),
        PF,
        "namespaces[0].exposes[0].pod_selector",
        "at least 1 item",
    ),
    *(
        (
            f"quota-{field}-above-int64",
            DI,
            set_path(di_ns(0, "quota", field), 2**63),
            DI,
            f"namespaces[0].quota.{field}",
            "less than or equal to 9223372036854775807",
        )
        for field in ("pods", "gpu", "load_balancers")
    ),
    (
        "unit-namespace-also-shared",
        RATES,
        append_to(("shared_namespaces",), {"namespace": "cs-miniapp", "split": "even"}),
        CS,
        "namespaces[0].name",
        "is also a shared namespace in rates.yaml",
    ),
]


@pytest.mark.parametrize(
    ("file", "change", "reported_file", "field", "message"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_catalog_is_refused_with_file_field_and_line(
    tmp_path: Path, file: str, change: Callable[[Any], Any], reported_file: str, field: str, message: str
) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / file, change)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    matching = [f for f in raised.value.findings if f.file == str(root / reported_file) and f.field == field]
    assert matching, f"no finding for {reported_file} {field!r}; got:\n{raised.value}"
    assert any(message in f.message for f in matching), str(raised.value)
    assert all(f.line is not None for f in matching), str(raised.value)
    result = runner.invoke(app, ["validate", "--catalog", str(root)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in output and "is valid" not in output


def test_system_group_allowed_by_the_platform_team(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(("viewers",), ["system:serviceaccounts:ci"]))
    with pytest.raises(CatalogError, match=r"allowed_groups in pool\.yaml"):
        load_catalog(root)
    edit_yaml(root / POOL, set_path(("allowed_groups",), ["system:serviceaccounts:ci"]))
    assert load_catalog(root).unit("data-insight").viewers == ["system:serviceaccounts:ci"]


@pytest.mark.parametrize("name", ["platform.yml", "platform.YAML", "platform.Yaml"])
def test_unit_file_with_another_suffix_is_never_left_out_silently(tmp_path: Path, name: str) -> None:
    root = copy_example(tmp_path)
    (root / PF).rename(root / "business-units" / name)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    (finding,) = [f for f in raised.value.findings if f.file.endswith(name)]
    assert "unit files end in .yaml (lower case), so this unit would be left out" in finding.message
    assert finding.hint == "rename it to platform.yaml"


def test_yaml_alias_bomb_fails_fast(tmp_path: Path) -> None:
    """Nine levels of nine aliases: under 1 KB on disk, 9^9 (387 million) strings once expanded."""
    root = copy_example(tmp_path)
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    bomb = "\n".join(lines) + "\n"
    assert len(bomb) < 1024
    (root / ES).write_text(bomb, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    assert time.monotonic() - started < 5
    (finding,) = [f for f in raised.value.findings if f.file == str(root / ES)]
    assert "expands to more than 200,000 YAML nodes through its aliases" in finding.message
    assert finding.line is not None


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    text = (root / DI).read_text(encoding="utf-8")
    text = text.replace("owners: [data-insight-admins]", "owners: &owners [data-insight-admins]")
    text = text.replace("viewers: [data-insight-devs, finance-readers]", "viewers: *owners")
    (root / DI).write_text(text, encoding="utf-8")
    assert load_catalog(root).unit("data-insight").viewers == ["data-insight-admins"]


def test_validate_says_valid_only_after_everything_passed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Pulumi program under mocks runs after the catalog checks: a failure there must not follow a
    "valid" line."""
    from infra import render
    from infra.errors import PoolError

    def broken(*_: object, **__: object) -> None:
        raise PoolError("manifest Namespace/di-api does not validate: metadata.labels: bad")

    monkeypatch.setattr(render, "render_cluster", broken)
    result = runner.invoke(app, ["validate", "--catalog", str(copy_example(tmp_path))])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "does not validate" in output
    assert "is valid" not in output


def test_request_file_alias_bomb_fails_fast(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    request = tmp_path / "request.yaml"
    request.write_text("\n".join(lines) + "\n", encoding="utf-8")
    started = time.monotonic()
    result = runner.invoke(app, ["request", "--file", str(request), "--catalog", str(copy_example(tmp_path))])
    assert time.monotonic() - started < 30
    assert result.exit_code == 2
    assert "expands to more than 200,000 YAML nodes" in " ".join(result.output.split())


def test_request_for_a_kube_namespace_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["request", "--unit", "community-services", "--namespace", "kube-reports", "--node-pool", "general",
         "--cpu", "1", "--memory", "1Gi", "--catalog", str(copy_example(tmp_path))],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "'kube-reports' is reserved for the platform" in " ".join(result.output.split())


def test_a_count_above_int64_is_refused_by_render_too(tmp_path: Path) -> None:
    """A ResourceQuota holds int64 counts: 2^63 pods rendered would be refused by the API server."""
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(di_ns(0, "quota", "pods"), 2**63))
    result = runner.invoke(app, ["render", "--catalog", str(root), "--out", str(tmp_path / "rendered")])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert "namespaces[0].quota.pods" in output and "9223372036854775807" in output and "Traceback" not in output
    assert not (tmp_path / "rendered").exists()


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere.yaml")


def _loop(path: Path) -> None:
    path.symlink_to(path)


@pytest.mark.parametrize(
    ("make", "message", "hint"),
    [
        (_dangling, "is a symbolic link to", "point the link at the unit's file"),
        (_loop, "leads back to itself (a loop)", "replace the link with the unit's file"),
        (lambda path: path.mkdir(), "is a folder, not a unit file", "rename the folder so it does not end in .yaml"),
    ],
    ids=["dangling-link", "link-loop", "folder"],
)
def test_a_unit_yaml_that_is_not_a_file_gets_a_fix_that_works(
    tmp_path: Path, make: Callable[[Path], None], message: str, hint: str
) -> None:
    """Before: "rename it to edge.yaml" — the name it already has."""
    root = copy_example(tmp_path)
    path = root / "business-units" / "edge.yaml"
    make(path)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    (finding,) = [f for f in raised.value.findings if f.file == str(path)]
    assert message in finding.message and "so this unit would be left out" in finding.message
    assert hint in finding.hint and "rename it to" not in finding.hint


def test_container_defaults_above_the_quota_are_refused_with_their_line(tmp_path: Path) -> None:
    """The program's LimitRange check: defaults above the namespace's limits quota, with file, field and line."""
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(di_ns(0, "container_defaults"), {"default_cpu": "50"}))  # di-api: 48 cores limit
    text = (root / DI).read_text(encoding="utf-8").splitlines()
    line = next(n for n, content in enumerate(text, 1) if "default_cpu" in content and "50" in content)
    result = runner.invoke(app, ["validate", "--catalog", str(root)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert f"{root / DI}:{line}: namespaces[0].container_defaults.default_cpu" in output, output
    assert "default container limit 50 is above the namespace's limits_cpu quota 48" in output
