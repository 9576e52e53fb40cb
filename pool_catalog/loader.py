"""Read a catalog directory into typed models, turning every problem into a `Finding`.

YAML is read with ruamel.yaml so each finding can point at the line the reviewer must edit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .checks import check_catalog
from .errors import CatalogError, Finding, Severity
from .files import POOL_FILE, RATES_FILE, UNITS_DIR, field_path, line_of
from .models import BusinessUnit, Catalog, Pool, RateCard

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """Load one YAML file with line information, or raise CatalogError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise CatalogError([Finding(str(path), "", "file not found", "create it or point --catalog elsewhere")]) from e
    except (OSError, UnicodeDecodeError) as e:
        raise CatalogError([Finding(str(path), "", f"cannot be read: {e}", "save it as UTF-8 text")]) from e
    try:
        check_expansion(text, path)
        return YAML(typ="rt").load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CatalogError(
            [Finding(str(path), "", f"is not valid YAML: {problem}", "fix the syntax", line=line)]
        ) from e


MAX_FILE_BYTES = 4 * 2**20
"""A catalog file larger than this is not hand-written; refuse it before parsing."""
MAX_NODES = 200_000
"""Most YAML nodes a file may stand for once its aliases are expanded (the example's largest file has a
few hundred). Counted from the parser's events before anything is built, so an alias bomb ("billion
laughs": a 1 KB file of nested aliases standing for billions of nodes) fails in milliseconds."""


def check_expansion(text: str, path: Path) -> None:
    """Refuse a file whose expanded size (aliases counted at the size of what they repeat) is too large."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise CatalogError(
            [Finding(str(path), "", f"is larger than {MAX_FILE_BYTES // 2**20} MiB", "split or shorten it")]
        )
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, nodes so far] per open collection
    total = 0
    for event in YAML(typ="rt").parse(text):
        kind = type(event).__name__
        if kind in ("MappingStartEvent", "SequenceStartEvent"):
            stack.append([event.anchor, 1])
            continue
        if kind in ("MappingEndEvent", "SequenceEndEvent"):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
            stack[-1][1] += size
        elif kind == "ScalarEvent":
            if event.anchor:
                sizes[event.anchor] = 1
            stack[-1][1] += 1
        elif kind == "AliasEvent":
            stack[-1][1] += sizes.get(event.anchor, 1)
        else:
            continue
        total = max(total, stack[0][1] + sum(level[1] for level in stack[1:]))
        if total > MAX_NODES:
            mark = getattr(event, "start_mark", None)
            raise CatalogError(
                [
                    Finding(
                        str(path),
                        "",
                        f"expands to more than {MAX_NODES:,} YAML nodes through its aliases (*name)",
                        "write the values out, or use fewer nested aliases",
                        line=mark.line + 1 if mark is not None else None,
                    )
                ]
            )


def parse_model(model: type[M], document: Any, file: str) -> M:
    """Validate `document` as `model`, or raise CatalogError with one finding per pydantic error."""
    if not isinstance(document, dict):
        raise CatalogError([Finding(file, "", "must be a YAML mapping (key: value) at the top level")])
    try:
        return model.model_validate(_plain(document))
    except ValidationError as e:
        raise CatalogError([_finding(file, document, error) for error in e.errors()]) from e


def _finding(file: str, document: Any, error: Any) -> Finding:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = error["msg"].removeprefix("Value error, ")
    hint = ""
    if error["type"] == "extra_forbidden":
        message, hint = "unknown field", "check the spelling; `pool catalog schema` lists every field"
    elif error["type"] == "missing":
        message, hint = "is required", "add it"
    return Finding(file, field_path(loc), message, hint, Severity.ERROR, line_of(document, loc))


def _plain(node: Any) -> Any:
    """ruamel's commented containers to plain dicts/lists (pydantic wants plain types)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def load_catalog(root: str | Path, *, check: bool = True, capacity: bool = True) -> Catalog:
    """Read pool.yaml, rates.yaml and business-units/*.yaml from `root`.

    Collects the problems of every file before raising, so one run shows them all. With
    `check`, cross-file rules (capacity, references, budgets) run too; warnings do not raise.
    `capacity=False` leaves out the capacity sums, for a caller that checks capacity itself (`pool request`).
    """
    root = Path(root)
    if not root.is_dir():
        raise CatalogError([Finding(str(root), "", "is not a directory", "pass the catalog directory")])
    findings: list[Finding] = []
    documents: dict[str, Any] = {}

    def load(model: type[M], path: Path) -> M | None:
        try:
            documents[str(path)] = document = read_yaml(path)
            return parse_model(model, document, str(path))
        except CatalogError as e:
            findings.extend(e.findings)
            return None

    pool = load(Pool, root / POOL_FILE)
    rates = load(RateCard, root / RATES_FILE)
    unit_files, misnamed = _unit_files(root / UNITS_DIR)
    findings.extend(misnamed)
    if not unit_files:
        findings.append(
            Finding(str(root / UNITS_DIR), "", "holds no <unit>.yaml files", "add one file per business unit")
        )
    units: list[BusinessUnit] = []
    for path in unit_files:
        unit = load(BusinessUnit, path)
        if unit is None:
            continue
        if unit.id != path.stem:
            findings.append(
                Finding(
                    str(path),
                    "id",
                    f"is {unit.id!r} but the file is {path.name}",
                    f"rename the file to {unit.id}.yaml or set id: {path.stem}",
                    line=line_of(documents[str(path)], ("id",)),
                )
            )
        units.append(unit)
    if findings or pool is None or rates is None:
        raise CatalogError(findings)
    catalog = Catalog(root=str(root), pool=pool, units=units, rates=rates)
    if not check:
        return catalog
    found = check_catalog(catalog, documents, capacity=capacity)
    errors = [f for f in found if f.severity is Severity.ERROR]
    if errors:
        raise CatalogError(errors)
    return catalog.model_copy(update={"warnings": [f for f in found if f.severity is Severity.WARNING]})


def line_in(path: Path, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of `loc` in the YAML file at `path` (None if it cannot be read): for findings made after
    loading, from the typed catalog, which has no line information of its own."""
    try:
        return line_of(read_yaml(path), loc)
    except CatalogError:
        return None


YAML_SUFFIXES = (".yaml", ".yml")


def _unit_files(directory: Path) -> tuple[list[Path], list[Finding]]:
    """The unit files (<id>.yaml), and a finding for every other YAML-looking file there: a unit file
    with another suffix would otherwise be left out silently (its namespaces billed as unallocated)."""
    if not directory.is_dir():
        return [], []
    files, findings = [], []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix == ".yaml" and path.is_file():
            files.append(path)
        elif path.suffix == ".yaml":
            findings.append(_not_a_unit_file(path))
        elif path.suffix.lower() in YAML_SUFFIXES:
            findings.append(
                Finding(
                    str(path),
                    "",
                    "is not read: unit files end in .yaml (lower case), so this unit would be left out",
                    f"rename it to {path.stem}.yaml",
                )
            )
    return files, findings


def _not_a_unit_file(path: Path) -> Finding:
    """A `<id>.yaml` that cannot be read as a file: the fix depends on what it is (renaming would not help)."""
    left_out = "so this unit would be left out"
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            target = os.readlink(path)
            return Finding(
                str(path),
                "",
                f"is a symbolic link to {target}, which does not exist, {left_out}",
                "point the link at the unit's file, or replace the link with the file",
            )
        except (RuntimeError, OSError):  # Python 3.11/3.12 raise RuntimeError for a loop, 3.13 OSError (ELOOP)
            return Finding(
                str(path),
                "",
                f"is a symbolic link that leads back to itself (a loop), {left_out}",
                "replace the link with the unit's file, or point it at that file",
            )
    if path.is_dir():
        return Finding(
            str(path),
            "",
            f"is a folder, not a unit file, {left_out}",
            f"put the unit's file at business-units/{path.name} itself, or rename the folder so it does not end in "
            ".yaml",
        )
    return Finding(
        str(path), "", f"is not a regular file, {left_out}", "replace it with the unit's YAML file (a regular file)"
    )
