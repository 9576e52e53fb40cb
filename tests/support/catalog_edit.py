"""Copy the example catalog and change it, for tests that need a slightly different catalog."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

EXAMPLE_CATALOG = Path(__file__).resolve().parents[2] / "catalog"


def copy_example(dest: Path) -> Path:
    """A private copy of the example catalog under `dest`."""
    target = dest / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, target)
    return target


def edit_yaml(path: Path, change: Callable[[Any], Any]) -> None:
    """Load `path`, let `change` mutate (or return a replacement of) the document, write it back."""
    yaml = YAML(typ="rt")
    document = yaml.load(path.read_text(encoding="utf-8"))
    replaced = change(document)
    with path.open("w", encoding="utf-8") as stream:
        yaml.dump(document if replaced is None else replaced, stream)


def two_cluster_catalog(tmp_path: Path) -> Path:
    """The example catalog with a second cluster dc2 (same hardware) and every namespace pinned to dc1."""
    directory = copy_example(tmp_path)

    def add_dc2(doc) -> None:
        second = copy.deepcopy(doc["clusters"][0])
        second["name"] = "dc2"
        for pool in second["node_pools"]:
            for node in pool["nodes"]:
                node["name"] = node["name"].replace("srv-", "srv2-")
        second["network"]["load_balancer_ranges"] = ["198.51.100.0/25"]
        doc["clusters"].append(second)

    def pin_dc1(doc) -> None:
        for namespace in doc["namespaces"]:
            namespace["cluster"] = "dc1"

    edit_yaml(directory / "pool.yaml", add_dc2)
    for unit_file in sorted((directory / "business-units").glob("*.yaml")):
        edit_yaml(unit_file, pin_dc1)
    return directory
