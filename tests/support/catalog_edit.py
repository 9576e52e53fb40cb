"""Copy the example catalog and change it, for tests that need a slightly different catalog."""

from __future__ import annotations

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
