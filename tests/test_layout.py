"""The house's dependency direction (ARCHITECTURE.md), read from every module's imports with an AST walk.

pool_catalog imports none of infra/policies/chargeback/pool_demo; policies imports only pool_catalog;
infra imports pool_catalog and policies (`pool check` applies the pack's rules) and, of chargeback, only its
invoice model (ALLOWED_MODULES: `pool request --history`); chargeback imports only pool_catalog; portal (the
web portal) imports pool_catalog, infra and chargeback, and nothing imports it but pool_demo; pool_demo may
import everything. Inside chargeback: errors/period ← collect ← rate ← outputs ← the commands (run, cli,
exporter, ledger, …). Imports inside functions and under TYPE_CHECKING count too:
a lazy import still ties the packages together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pool_catalog", "policies", "infra", "chargeback", "portal", "pool_demo")

ALLOWED: dict[str, set[str]] = {
    "pool_catalog": {"pool_catalog"},
    "policies": {"pool_catalog", "policies"},
    "infra": {"pool_catalog", "policies", "infra"},
    "chargeback": {"pool_catalog", "chargeback"},
    "portal": {"pool_catalog", "infra", "chargeback", "portal"},
    "pool_demo": set(PACKAGES),
}
"""Which of the project's packages each package may import."""

ALLOWED_MODULES: dict[str, set[str]] = {"infra": {"chargeback.rate.documents"}}
"""Single modules a package may import beyond ALLOWED: `pool request --history` reads an issued invoice with
the model it was written from (chargeback's published invoice contract). No cycle: chargeback never imports
infra, and the contract module imports nothing of chargeback (test below)."""

CHARGEBACK_BASE = {"chargeback.errors", "chargeback.period", "chargeback.grouping", "chargeback.heap"}
CHARGEBACK_LAYERS = {"collect": 1, "rate": 2, "outputs": 3}
"""Layer 0 is the base every layer uses; anything else in chargeback (run, cli, exporter, ledger…) is layer 4."""
LAYER_NAMES = {
    0: "errors/period/grouping/heap",
    1: "collect",
    2: "rate",
    3: "outputs",
    4: "commands (run, cli, exporter, ledger)",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `path`, relative ones resolved, `from pkg import mod` as pkg.mod."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                # `from . import usage` imports the module chargeback.usage, not the package.
                is_module = (root / Path(*candidate.split("."))).with_suffix(".py").exists() or (
                    root / Path(*candidate.split("."))
                ).is_dir()
                found.append((node.lineno, candidate if is_module else module))
    return found


def chargeback_layer(module: str) -> int:
    if module in CHARGEBACK_BASE:
        return 0
    parts = module.split(".")
    return CHARGEBACK_LAYERS.get(parts[1], 4) if len(parts) > 1 else 4


def violations(root: Path) -> list[str]:
    """Every import in the tree under `root` that runs against the dependency direction, as 'file:line: why'."""
    problems: list[str] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            importer = module_name(path, root)
            for line, module in imported_modules(path, root):
                top = module.split(".")[0]
                where = f"{path.relative_to(root)}:{line}"
                if module in ALLOWED_MODULES.get(package, ()):
                    continue
                if top in PACKAGES and top not in ALLOWED[package]:
                    problems.append(f"{where}: {package} imports {module} (allowed: {sorted(ALLOWED[package])})")
                elif package == "chargeback" and top == "chargeback":
                    own, theirs = chargeback_layer(importer), chargeback_layer(module)
                    if theirs > own:
                        problems.append(
                            f"{where}: {importer} ({LAYER_NAMES[own]}) imports {module} ({LAYER_NAMES[theirs]}), "
                            "a layer above it"
                        )
    return problems


def test_every_import_runs_down_the_layers() -> None:
    modules = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert len(modules) > 60, "the walk found too few modules: is ROOT the repository?"
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pool_catalog/models.py": "from infra.program import build\n"}, "pool_catalog imports infra.program"),
        ({"chargeback/run.py": "def f():\n    from pool_demo import synthetic\n"}, "chargeback imports pool_demo"),
        ({"policies/rules.py": "import infra.mocks\n"}, "policies imports infra.mocks"),
        ({"infra/cli.py": "from chargeback.period import Period\n"}, "infra imports chargeback.period"),
        (
            {
                "chargeback/collect/__init__.py": "",
                "chargeback/rate/__init__.py": "",
                "chargeback/rate/idle.py": "",
                "chargeback/collect/usage.py": "from ..rate import idle\n",
            },
            "chargeback.collect.usage (collect) imports chargeback.rate.idle (rate)",
        ),
        (
            {
                "chargeback/outputs/__init__.py": "",
                "chargeback/run.py": "",
                "chargeback/outputs/reports.py": "from ..run import run_period\n",
            },
            "chargeback.outputs.reports (outputs) imports chargeback.run (commands",
        ),
        (
            {"chargeback/period.py": "from chargeback.collect import usage\n"},
            "(errors/period/grouping/heap) imports chargeback.collect",
        ),
    ],
)
def test_an_upward_import_is_named_with_file_and_line(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    found = violations(_tree(tmp_path, files))
    assert len(found) == 1 and expected in found[0], found
    file, line = found[0].split(": ")[0].rsplit(":", 1)
    assert file in files and int(line) in (1, 2)


def test_the_invoice_contract_infra_reads_imports_nothing_of_chargeback() -> None:
    """infra may read invoices with chargeback.rate.documents only while that pulls in no other chargeback module."""
    for package, modules in ALLOWED_MODULES.items():
        for module in modules:
            path = (ROOT / Path(*module.split("."))).with_suffix(".py")
            imported = {m for _, m in imported_modules(path, ROOT)}
            assert path.exists() and not {m for m in imported if m.split(".")[0] in {package, "chargeback"}}, imported
            for parent in (
                ROOT / Path(*module.split(".")[:i]) / "__init__.py" for i in range(1, module.count(".") + 1)
            ):
                assert not imported_modules(parent, ROOT), f"{parent} imports modules: {package} would load them"


def test_infra_imports_only_the_invoice_contract_of_chargeback(tmp_path: Path) -> None:
    files = {
        "chargeback/rate/__init__.py": "",
        "chargeback/rate/documents.py": "",
        "chargeback/rate/idle.py": "",
        "infra/history.py": "from chargeback.rate.documents import Invoice\nfrom chargeback.rate import idle\n",
    }
    found = violations(_tree(tmp_path, files))
    assert len(found) == 1 and "infra/history.py:2: infra imports chargeback.rate.idle" in found[0], found


def test_downward_imports_pass(tmp_path: Path) -> None:
    files = {
        "chargeback/collect/__init__.py": "",
        "chargeback/collect/usage.py": "from ..errors import E\nfrom pool_catalog.models import Catalog\n",
        "chargeback/rate/__init__.py": "",
        "chargeback/rate/idle.py": "from ..collect import usage\n",
        "chargeback/run.py": "from .rate import idle\n",
        "infra/check.py": "from policies.rules import RULES\n",
        "pool_demo/demo.py": "import infra.render\nimport chargeback.run\n",
    }
    assert violations(_tree(tmp_path, files)) == []
